# Data mixtures (isoflop.mix; see README, "Choosing the data mixture"). Without a `mix` section nothing here
# runs and the grid trains on the natural mixture of the domains, as before.
#
#   cluster_tokens   the curated splits as one token group per curation cluster (mix.groups: clusters)
#   mix_check        the grid's mixture against the token counts and mix.max_epochs, before any training
#   mix_round        checkpoint per search round: the round's proxy mixtures (round r reads round r-1's fit)
#   mix_train        one job per mixture run (proxy, verification, scaling): an ordinary training run
#   mix_fit          per round: the predictors' scores on every proxy so far, and the proposed mixture
#   mix_final        checkpoint: the verification runs and the scaling grids of the chosen mixture
#   mix_summary      verification table, decision accuracy, scaling laws and the gap at 10x
#
# The rounds are checkpoints because a round's runs are known only once the round before it is fitted.
from isoflop.plan import training_data_id

MIX = config["mix"]
DATA_ID = training_data_id(IDS)
SEARCH = MIX["search"]["enabled"]
ROUNDS = MIX["search"]["rounds"]
# what the mixture stages read: the run specs' sections, the search's settings and the fit's
MIX_CFG = {key: config[key] for key in ("fit", "mix", "model", "plan", "seed", "tokenizer", "train")}
if config["eval"]["tasks"]:  # the tasks every run scores (a study without them keeps these rules' params)
    MIX_CFG["eval"] = config["eval"]
# a round and its fit depend on the search and the epoch limit (at the largest verified scale), not on what
# the verification and scaling compare
# the final stage chooses runs; how the summary bootstraps and fits them is not its business
FINAL_CFG = {**MIX_CFG, "fit": None, "mix": {**MIX, "verify": {**MIX["verify"], "bootstrap": None}}}
SEARCH_CFG = {**MIX_CFG, "fit": None, "plan": {"flops_convention": config["plan"]["flops_convention"]},
              "mix": {"allow_repeats": MIX["allow_repeats"], "max_epochs": MIX["max_epochs"], "search": MIX["search"],
                      "verify": {"scales": MIX["verify"]["scales"]}}}


wildcard_constraints:
    round=r"\d+",
    stage=r"round-\d+|final",


if "groups" in IDS:

    rule cluster_tokens:
        input:
            curated=CURATED,
            tokens=TOKENS,
        output:
            directory(DATA),
        log:
            LAYOUT.log("cluster_tokens"),
        benchmark:
            LAYOUT.benchmark("cluster_tokens")
        conda:
            "../../envs/data.yaml"
        script:
            "../../scripts/cluster_tokens.py"


rule mix_check:
    input:
        DATA,
    output:
        LAYOUT.mix_check,
    params:
        mixture=MIX["mixture"],
        max_epochs=MIX["max_epochs"],
        allow_repeats=MIX["allow_repeats"],
        tokens=max([run["D"] for run in RUNS.values()], default=0),
    log:
        LAYOUT.log("mix/check"),
    benchmark:
        LAYOUT.benchmark("mix/check")
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/mix_check.py"


checkpoint mix_round:
    input:
        data=DATA,
        previous=previous_fit,
    output:
        LAYOUT.mix_runs("round-{round}"),
    params:
        cfg=SEARCH_CFG,
        data_id=DATA_ID,
    log:
        LAYOUT.log("mix/round-{round}"),
    benchmark:
        LAYOUT.benchmark("mix/round-{round}")
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/mix_round.py"


rule mix_train:
    input:
        data=DATA,
        # ancient: a stage rewritten with the same runs retrains none (each run's spec is its param)
        runs=lambda wildcards: ancient(stage_runs(wildcards.stage)),
    output:
        result=LAYOUT.mix_run_dir("{stage}", "{run_id}") / "result.json",
        curve=LAYOUT.mix_run_dir("{stage}", "{run_id}") / "curve.parquet",
        windows=LAYOUT.mix_run_dir("{stage}", "{run_id}") / "eval_windows.parquet",
    params:
        # only what determines the result; the runs file is read once its checkpoint has run
        spec=lambda wildcards: read_json(LAYOUT.mix_runs(wildcards.stage))[wildcards.run_id]["spec"],
        device=config["train"]["device"],
    threads: config["train"]["threads"]
    resources:
        mem_mb=2000,
    log:
        LAYOUT.log("mix/{stage}/{run_id}"),
    benchmark:
        LAYOUT.benchmark("mix/{stage}-{run_id}")
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/mix_train.py"


rule mix_fit:
    input:
        data=DATA,
        runs=lambda wildcards: [stage_runs(f"round-{r}") for r in range(int(wildcards.round) + 1)],
        results=lambda wildcards: [path for r in range(int(wildcards.round) + 1) for path in stage_results(f"round-{r}")],
        previous=previous_fit,
    output:
        LAYOUT.mix_fit("{round}"),
    params:
        cfg=SEARCH_CFG,
    log:
        LAYOUT.log("mix/fit-{round}"),
    benchmark:
        LAYOUT.benchmark("mix/fit-{round}")
    conda:
        "../../envs/fit.yaml"
    script:
        "../../scripts/mix_fit.py"


checkpoint mix_final:
    input:
        data=DATA,
        fit=LAYOUT.mix_fit(ROUNDS - 1),
    output:
        LAYOUT.mix_runs("final"),
    params:
        cfg=FINAL_CFG,
        data_id=DATA_ID,
    log:
        LAYOUT.log("mix/final"),
    benchmark:
        LAYOUT.benchmark("mix/final")
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/mix_final.py"


rule mix_summary:
    input:
        fits=[LAYOUT.mix_fit(r) for r in range(ROUNDS)],
        runs=LAYOUT.mix_runs("final"),
        results=lambda wildcards: stage_results("final"),
        windows=lambda wildcards: [Path(path).with_name("eval_windows.parquet") for path in stage_results("final")],
    output:
        LAYOUT.mix_summary,
    params:
        cfg=MIX_CFG,
    log:
        LAYOUT.log("mix/summary"),
    benchmark:
        LAYOUT.benchmark("mix/summary")
    conda:
        "../../envs/fit.yaml"
    script:
        "../../scripts/mix_summary.py"
