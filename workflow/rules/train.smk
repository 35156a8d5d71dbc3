rule train:
    input:
        tokens=TOKENS,
        # ancient: recreating the store must never retrain; it only has to exist before the first run logs.
        store=ancient(STORE_MARKER) if TRACKING else [],
    output:
        result=STUDY / "runs" / "{run_id}" / "result.json",
    params:
        run=run_spec,
    threads: config["train"]["threads"]
    resources:
        mem_mb=2000,
    log:
        STUDY / "logs" / "train" / "{run_id}.log",
    benchmark:
        STUDY / "benchmarks" / "train" / "{run_id}.tsv"
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/train.py"


rule runs_table:
    input:
        RESULTS,
    output:
        STUDY / "runs.parquet",
    log:
        STUDY / "logs" / "runs_table.log",
    conda:
        "../../envs/fit.yaml"
    script:
        "../../scripts/runs_table.py"
