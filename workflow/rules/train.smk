# Training: one job per planned run (and per WSD trunk). A job's params hold only what determines its result
# (its spec), so plan bookkeeping never retrains; its run record comes from plan.json, which is `ancient`
# for the same reason.
# On a cluster these two run where Snakemake runs: each reads and writes a few small files, less work than a
# SLURM job's submission and status polls.
localrules:
    plan,
    runs_table,

# One run on several data-parallel ranks: train.devices per node on train.nodes nodes (isoflop.train.distributed
# launches them: torchrun here, srun inside a SLURM allocation). Not params: how many devices train a run changes
# its speed, not its result, so the scripts read them from the config. Snakemake counts every rank's threads;
# under the SLURM profile a multi-rank job asks for one task per rank (`mpi`: the job launches its own srun)
# and, on CUDA, one GPU per rank.
TRAIN_DEVICES, TRAIN_NODES = config["train"]["devices"], config["train"]["nodes"]
TRAIN_RESOURCES = {"mem_mb": 2000 * TRAIN_DEVICES, **TRAIN_GPU}
if TRAIN_DEVICES * TRAIN_NODES > 1:
    TRAIN_RESOURCES.update(tasks=TRAIN_DEVICES * TRAIN_NODES, mpi="srun", cpus_per_task=config["train"]["threads"])
    if TRAIN_NODES > 1:
        TRAIN_RESOURCES["nodes"] = TRAIN_NODES
    if TRAIN_GPU:
        TRAIN_RESOURCES["gres"] = f"gpu:{TRAIN_DEVICES}"



rule plan:
    output:
        LAYOUT.plan,
    params:
        # the whole plan, computed once at parse time: a changed grid (or N/C convention) rewrites plan.json
        plan=PLAN_RECORD,
    log:
        LAYOUT.log("plan"),
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/plan.py"


# A WSD trunk and the cooldowns branched from it train in one job: each cooldown is a few seconds, and a
# process of its own would spend about as long starting torch. Each branched run still has its own `train`
# job, which publishes the folder the trunk's job wrote (so deleting a run's result.json republishes it;
# deleting its trunk's folder retrains the family).
rule train_trunk:
    input:
        DATA,
        MIX_CHECK,
    output:
        result=LAYOUT.trunk_result("{trunk_id}"),
        runs=directory(LAYOUT.trunk_runs("{trunk_id}")),
    params:
        # only what determines the trunk's and its branches' results (Snakemake reruns a job whose params change)
        spec=lambda wildcards: TRUNKS[wildcards.trunk_id]["spec"],
        branches=lambda wildcards: branches_of(wildcards.trunk_id),
        work=lambda wildcards: str(LAYOUT.trunk_work(wildcards.trunk_id)),
        device=config["train"]["device"],
    threads: config["train"]["threads"] * TRAIN_DEVICES
    resources:
        **TRAIN_RESOURCES,
    log:
        LAYOUT.log("trunks/{trunk_id}"),
    benchmark:
        LAYOUT.benchmark("trunks/{trunk_id}")
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/train_trunk.py"


rule train:
    input:
        data=training_input,
        plan=ancient(LAYOUT.plan),
        check=MIX_CHECK,
        # a forecast run starts once the fit has forecast it (ancient: a refit does not retrain it)
        forecast=lambda wildcards: [ancient(LAYOUT.laws)] if RUNS[wildcards.run_id].get("forecast") else [],
    output:
        result=LAYOUT.run_result("{run_id}"),
        curve=LAYOUT.run_curve("{run_id}"),
    params:
        # only what determines the result (Snakemake reruns a job whose params change)
        spec=lambda wildcards: RUNS[wildcards.run_id]["spec"],
        device=config["train"]["device"],
    threads: config["train"]["threads"] * TRAIN_DEVICES
    resources:
        **TRAIN_RESOURCES,
    log:
        LAYOUT.log("train/{run_id}"),
    benchmark:
        LAYOUT.benchmark("train/{run_id}")
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/train.py"


rule runs_table:
    input:
        plan=LAYOUT.plan,
        results=RESULTS,
        # each result.json records its curve's hash, checked here (isoflop.integrity)
        curves=CURVES,
    output:
        LAYOUT.runs_table,
    log:
        LAYOUT.log("runs_table"),
    benchmark:
        LAYOUT.benchmark("runs_table")
    conda:
        "../../envs/fit.yaml"
    script:
        "../../scripts/runs_table.py"
