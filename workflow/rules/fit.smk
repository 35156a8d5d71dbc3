# The study's tail: laws from the runs table, then the figures and report. Each rule passes the config it
# depends on as params (Snakemake reruns a job whose params change) and declares every file it reads.
#
# `snakemake --report report.html` shows report.md, every figure and table in the report's order (summary, laws,
# diagnostics, mixture, training, curation; isoflop.captions). The figures share one directory output, and
# Snakemake gives a directory one caption file; so that file (report/figure.rst) renders the figure's own
# caption, workflow/report/figures/<name>.rst, which reaches it as a param (editing a caption reruns only the
# report job, in seconds; the HTML report lists it as one line).
from pathlib import Path

from isoflop import captions as report_captions

FIGURE_CAPTIONS = report_captions.FigureCaptions.read(Path(workflow.basedir) / "workflow/report/figures")
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
        runs=LAYOUT.runs_table,
        # the schedule law reads each WSD run's curve and its lr schedule from the run's spec in the plan
        plan=LAYOUT.plan,
        curves=CURVES,
    output:
        LAYOUT.laws,
    params:
        bootstrap=config["fit"]["bootstrap"],
        huber_delta=config["fit"]["huber_delta"],
        seed=config["seed"],
        lr_law=len(config["train"]["lr_multipliers"]) > 1,
        # the fit forecasts the plan's forecast runs (never in the runs table) and records each forecast, with
        # the time, in the study's append-only ledger (isoflop.ledger), once
        ledger=str(LAYOUT.ledger),
    log:
        LAYOUT.log("fit"),
    benchmark:
        LAYOUT.benchmark("fit")
    threads: FIT_THREADS
    conda:
        "../../envs/fit.yaml"
    script:
        "../../scripts/fit.py"


# The fit's forecasts of the forecast runs (plan.forecast_budgets) scored once those runs land; their training
# waits for laws.json (workflow/rules/train.smk), so every forecast is made before its run trains.
FORECAST_SCORES = [LAYOUT.forecast_scores] if FORECAST_RESULTS else []


rule score_forecasts:
    input:
        laws=LAYOUT.laws,
        results=FORECAST_RESULTS,
    output:
        LAYOUT.forecast_scores,
    log:
        LAYOUT.log("score_forecasts"),
    benchmark:
        LAYOUT.benchmark("score_forecasts")
    conda:
        "../../envs/fit.yaml"
    script:
        "../../scripts/score_forecasts.py"


rule report:
    input:
        # The tables the figures are drawn from, flagged here for the HTML report beside the figures.
        runs=report(LAYOUT.runs_table, caption="../report/runs.rst", category=report_captions.TRAINING,
                    subcategory="tables"),
        laws=report(LAYOUT.laws, caption="../report/laws.rst", category=report_captions.LAWS,
                    subcategory="3. laws.json"),
        curated=report(CURATED, patterns=["{table}.json"], caption="../report/curation.rst",
                       category=report_captions.CURATION, subcategory="tables"),
        # the token folder training reads: its meta.json counts the tokens per group (the report's epochs)
        tokens=DATA,
        plan=LAYOUT.plan,
        curves=CURVES,
        trunks=TRUNK_RESULTS,
        benchmarks=[path for paths in BENCHMARKED.values() for path in paths],
        baseline=BASELINE,
        mix=MIX_TARGETS,
        forecasts=FORECAST_SCORES,
    output:
        report=report(LAYOUT.report, caption="../report/summary.rst", category=report_captions.SUMMARY,
                      subcategory="report.md"),
        figures=report(directory(LAYOUT.figures), patterns=["{name}.png"], caption="../report/figure.rst",
                       category=lambda wildcards: report_captions.figure_category(wildcards.name),
                       subcategory=lambda wildcards: report_captions.figure_subcategory(wildcards.name)),
    params:
        study=config["study"],
        captions=FIGURE_CAPTIONS,
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
