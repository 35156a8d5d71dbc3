# Validated config, content-hash ids and the run grid, computed once when the workflow is parsed. Every path
# comes from isoflop.layout (the one place that names them); every job reads the plan from plan.json.
import sys

from isoflop.config import validate_config
from isoflop.errors import UserError
from isoflop.layout import StudyLayout
from isoflop.plan import content_id, study_plan

try:
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
RESULTS = [LAYOUT.run_result(run_id) for run_id in sorted(RUNS)]
CURVES = [LAYOUT.run_curve(run_id) for run_id in sorted(RUNS)]
TRUNK_RESULTS = [LAYOUT.trunk_result(trunk_id) for trunk_id in sorted(TRUNKS)]


def trunk_branches(wildcards):
    """A wsd run with a branched cooldown starts from its trunk's saved states."""
    trunk_id = RUNS[wildcards.run_id]["trunk_id"]
    return [LAYOUT.trunk_branches(trunk_id)] if trunk_id else []


wildcard_constraints:
    run_id="[0-9a-f]{12}",
    trunk_id="[0-9a-f]{12}",
