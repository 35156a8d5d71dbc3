# Validated config, content-hash ids and the run grid, computed once when the workflow is parsed. Every path
# comes from isoflop.layout (the one place that names them); every job reads the plan from plan.json.
import sys
from pathlib import Path

from isoflop.config import read_config_file, validate_config
from isoflop.errors import UserError
from isoflop.launch import claim_workdir
from isoflop.layout import StudyLayout
from isoflop.plan import content_id, study_plan
from isoflop.workflow import read_json

# A Snakemake lock left by a killed run is removed here when no live run holds the OS lock (isoflop.launch);
# jobs on cluster nodes parse the Snakefile too, and leave the lock to the process that started them.
if not (workflow.remote_exec or workflow.subprocess_exec):
    claim_workdir()

try:
    # Snakemake has already read these files with its own loader (YAML aliases allowed, YTE templates
    # evaluated); reread each strictly so that a file using either is refused before any work.
    for path in workflow.configfiles:
        read_config_file(path)
    config.update(validate_config(config))
    IDS, PLAN = study_plan(config)
except UserError as err:
    sys.exit(f"isoflop: config error: {err}")

RUNS, TRUNKS = PLAN["runs"], PLAN["trunks"]
LAYOUT = StudyLayout.of(config)
PLAN_RECORD = {"plan_id": content_id("plan", PLAN), "ids": IDS, **PLAN}
CORPUS = LAYOUT.corpus(IDS["corpus"])
CURATED = LAYOUT.curated(IDS["curated"])
TOKENS = LAYOUT.tokens(IDS["tokens"])
# what runs train on: the token folder (a group per domain), or with mix.groups: clusters a group per cluster
DATA = LAYOUT.cluster_tokens(IDS["groups"]) if "groups" in IDS else TOKENS
# a grid with a mixture set waits for its check against the token counts (workflow/rules/mix.smk)
MIX_CHECK = [LAYOUT.mix_check] if config["mix"]["mixture"] is not None else []
# the mixture search's summary (workflow/rules/mix.smk), a target and an input of the report
MIX_TARGETS = [LAYOUT.mix_summary] if config["mix"]["search"]["enabled"] else []
TRACKING = config["tracking"]["enabled"]
# A training job's GPU, as a SLURM generic resource (workflow/profiles/slurm): a string resource, so a group of
# runs packed into one allocation asks for one GPU in all, not one each. Local runs ignore it.
TRAIN_GPU = {"gres": "gpu:1"} if config["train"]["device"] == "cuda" else {}
# the runs the laws are fitted to; a forecast run (plan.forecast_budgets) is left out of the runs table, so
# that the fit never waits for it, and scored against the fit's forecast (workflow/rules/fit.smk)
FITTED_RUNS = sorted(run_id for run_id, run in RUNS.items() if not run.get("forecast"))
FORECAST_RUNS = sorted(run_id for run_id, run in RUNS.items() if run.get("forecast"))
RESULTS = [LAYOUT.run_result(run_id) for run_id in FITTED_RUNS]
CURVES = [LAYOUT.run_curve(run_id) for run_id in FITTED_RUNS]
FORECAST_RESULTS = [LAYOUT.run_result(run_id) for run_id in FORECAST_RUNS]
TRUNK_RESULTS = [LAYOUT.trunk_result(trunk_id) for trunk_id in sorted(TRUNKS)]
# a baseline study to compare with: its laws.json, a declared input of the report
BASELINE = [Path(config["baseline"]) / "laws.json" if Path(config["baseline"]).is_dir() else Path(config["baseline"])
            ] if config["baseline"] else []


def training_input(wildcards):
    """What a run's job reads: the token folder, or for a wsd run branched from a trunk the folder of runs its
    trunk's job trained (see rule train_trunk)."""
    trunk_id = RUNS[wildcards.run_id]["trunk_id"]
    return LAYOUT.trunk_runs(trunk_id) if trunk_id else DATA


def branches_of(trunk_id: str) -> dict:
    """The runs a trunk's job trains after the trunk: run id -> what determines its result."""
    return {run_id: {"spec": RUNS[run_id]["spec"], "branch_step": RUNS[run_id]["branch_step"]}
            for run_id in TRUNKS[trunk_id]["run_ids"]}


# the mixture search (workflow/rules/mix.smk): its stages' runs are known once their checkpoint has run
def previous_fit(wildcards):
    index = int(wildcards.round)
    return [LAYOUT.mix_fit(index - 1)] if index else []


def stage_runs(stage: str) -> str:
    """The runs file of a mixture stage, once its checkpoint job has written it."""
    if stage == "final":
        return checkpoints.mix_final.get().output[0]
    return checkpoints.mix_round.get(round=stage.split("-")[1]).output[0]


def stage_results(stage: str) -> list:
    """The result files of the runs a stage lists: its own, and (for the final stage) the proxies it reuses,
    which live in their round's folder."""
    return [LAYOUT.mix_run_dir(record.get("stage", stage), run_id) / "result.json"
            for run_id, record in sorted(read_json(stage_runs(stage)).items())]


wildcard_constraints:
    run_id="[0-9a-f]{12}",
    trunk_id="[0-9a-f]{12}",
