# Validated config, content-hash ids and the run grid, computed once when the workflow is parsed. Every path
# comes from isoflop.layout (the one place that names them); every job reads the plan from plan.json.
import sys
from pathlib import Path

from isoflop.config import read_config_file, validate_config
from isoflop.errors import UserError
from isoflop.launch import claim_workdir
from isoflop.layout import StudyLayout
from isoflop.plan import content_id, study_plan

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
TRACKING = config["tracking"]["enabled"]
# A training job's GPU, as a SLURM generic resource (workflow/profiles/slurm): a string resource, so a group of
# runs packed into one allocation asks for one GPU in all, not one each. Local runs ignore it.
TRAIN_GPU = {"gres": "gpu:1"} if config["train"]["device"] == "cuda" else {}
RESULTS = [LAYOUT.run_result(run_id) for run_id in sorted(RUNS)]
CURVES = [LAYOUT.run_curve(run_id) for run_id in sorted(RUNS)]
TRUNK_RESULTS = [LAYOUT.trunk_result(trunk_id) for trunk_id in sorted(TRUNKS)]
# a baseline study to compare with: its laws.json, a declared input of the report
BASELINE = [Path(config["baseline"]) / "laws.json" if Path(config["baseline"]).is_dir() else Path(config["baseline"])
            ] if config["baseline"] else []


def training_input(wildcards):
    """What a run's job reads: the token folder, or for a wsd run branched from a trunk the folder of runs its
    trunk's job trained (see rule train_trunk)."""
    trunk_id = RUNS[wildcards.run_id]["trunk_id"]
    return LAYOUT.trunk_runs(trunk_id) if trunk_id else TOKENS


def branches_of(trunk_id: str) -> dict:
    """The runs a trunk's job trains after the trunk: run id -> what determines its result."""
    return {run_id: {"spec": RUNS[run_id]["spec"], "branch_step": RUNS[run_id]["branch_step"]}
            for run_id in TRUNKS[trunk_id]["run_ids"]}


def figure_category(wildcards):
    """The stage a figure shows, as the HTML report's category."""
    if wildcards.name.startswith("curation_"):
        return "Curation"
    return "Training" if wildcards.name == "loss_curves" else "Laws"


wildcard_constraints:
    run_id="[0-9a-f]{12}",
    trunk_id="[0-9a-f]{12}",
