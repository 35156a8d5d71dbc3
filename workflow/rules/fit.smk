# The study's tail: laws from the runs table, then the figures and report. Each rule passes the config it
# depends on as params (Snakemake reruns a job whose params change) and declares every file it reads.
FIT_THREADS = 2  # bootstrap refits in parallel; Snakemake lowers it to --cores where that is less
BENCHMARKED = {  # stage -> its jobs' benchmark files, for the report's "where the time went"
    "corpus": [LAYOUT.benchmark("corpus")],
    "curate": CURATE_BENCHMARKS,
    "tokenize": [LAYOUT.benchmark("tokenize")],
    "trunks": [LAYOUT.benchmark(f"trunks/{trunk_id}") for trunk_id in sorted(TRUNKS)],
    "train": [LAYOUT.benchmark(f"train/{run_id}") for run_id in sorted(RUNS)],
    "runs_table": [LAYOUT.benchmark("runs_table")],
    "fit": [LAYOUT.benchmark("fit")],
}


rule fit:
    input:
        LAYOUT.runs_table,
    output:
        LAYOUT.laws,
    params:
        bootstrap=config["fit"]["bootstrap"],
        huber_delta=config["fit"]["huber_delta"],
        seed=config["seed"],
        lr_law=len(config["train"]["lr_multipliers"]) > 1,
    log:
        LAYOUT.log("fit"),
    benchmark:
        LAYOUT.benchmark("fit")
    threads: FIT_THREADS
    conda:
        "../../envs/fit.yaml"
    script:
        "../../scripts/fit.py"


rule report:
    input:
        runs=LAYOUT.runs_table,
        laws=LAYOUT.laws,
        curated=CURATED,
        plan=LAYOUT.plan,
        curves=CURVES,
        trunks=TRUNK_RESULTS,
        benchmarks=[path for paths in BENCHMARKED.values() for path in paths],
    output:
        report=LAYOUT.report,
        figures=directory(LAYOUT.figures),
    params:
        study=config["study"],
        benchmarks={stage: [str(path) for path in paths] for stage, paths in BENCHMARKED.items()},
        ground_truth=config["corpus"]["synthetic"] if config["corpus"]["synthetic"]["enabled"] else None,
        mixed_sources=bool(config["corpus"]["sources"]) or config["corpus"]["stdlib"]["enabled"],
    log:
        LAYOUT.log("report"),
    benchmark:
        LAYOUT.benchmark("report")
    conda:
        "../../envs/fit.yaml"
    script:
        "../../scripts/report.py"
