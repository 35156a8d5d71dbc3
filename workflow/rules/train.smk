rule plan:
    output:
        STUDY / "plan.json",
    params:
        # the plan's content hash: a changed grid rewrites plan.json (and nothing else)
        plan_id=PLAN_ID,
    log:
        STUDY / "logs" / "plan.log",
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/plan.py"


rule train_trunk:
    input:
        TOKENS,
    output:
        STUDY / "trunks" / "{trunk_id}" / "result.json",
    params:
        # only what determines the trunk's states (Snakemake reruns a job whose params change)
        spec=lambda wildcards: TRUNKS[wildcards.trunk_id]["spec"],
        branch_steps=lambda wildcards: TRUNKS[wildcards.trunk_id]["branch_steps"],
    threads: config["train"]["threads"]
    resources:
        mem_mb=2000,
    log:
        STUDY / "logs" / "trunks" / "{trunk_id}.log",
    benchmark:
        STUDY / "benchmarks" / "trunks" / "{trunk_id}.tsv"
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/train_trunk.py"


rule train:
    input:
        tokens=TOKENS,
        # a wsd run with a branched cooldown starts from its trunk's saved state
        trunk=trunk_of,
        # ancient: recreating the store must never retrain; it only has to exist before the first run logs.
        store=ancient(STORE_MARKER) if TRACKING else [],
    output:
        result=STUDY / "runs" / "{run_id}" / "result.json",
    params:
        # only what determines the result (Snakemake reruns a job whose params change)
        spec=lambda wildcards: RUNS[wildcards.run_id]["spec"],
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
