rule fit:
    input:
        STUDY / "runs.parquet",
    output:
        STUDY / "laws.json",
    log:
        STUDY / "logs" / "fit.log",
    benchmark:
        STUDY / "benchmarks" / "fit.tsv"
    threads: workflow.cores
    conda:
        "../../envs/fit.yaml"
    script:
        "../../scripts/fit.py"


rule report:
    input:
        runs=STUDY / "runs.parquet",
        laws=STUDY / "laws.json",
        curated=CURATED,
        plan=STUDY / "plan.json",
    output:
        report=STUDY / "report.md",
        figures=directory(STUDY / "figures"),
    log:
        STUDY / "logs" / "report.log",
    benchmark:
        STUDY / "benchmarks" / "report.tsv"
    conda:
        "../../envs/fit.yaml"
    script:
        "../../scripts/report.py"
