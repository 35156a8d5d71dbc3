# Validated config, content-hash ids and the run grid, computed once when the workflow is parsed.
import sys
from pathlib import Path

from isoflop.config import validate_config
from isoflop.errors import UserError
from isoflop.plan import content_id, study_plan

try:
    config.update(validate_config(config))
    IDS, PLAN = study_plan(config)
    RUNS, TRUNKS = PLAN["runs"], PLAN["trunks"]
    PLAN_ID = content_id("plan", PLAN)
except UserError as err:
    sys.exit(f"isoflop: config error: {err}")

STUDY = Path(config["results_dir"]) / config["study"]
CORPUS = STUDY / "corpus" / IDS["corpus"]
CURATED = STUDY / "curated" / IDS["curated"]
TOKENS = STUDY / "tokens" / IDS["tokens"]
TRACKING = config["tracking"]["enabled"]
STORE_MARKER = STUDY / "mlflow" / "store.json"
RESULTS = [STUDY / "runs" / run_id / "result.json" for run_id in sorted(RUNS)]


def trunk_of(wildcards):
    trunk_id = RUNS[wildcards.run_id]["trunk_id"]
    return [STUDY / "trunks" / trunk_id / "result.json"] if trunk_id else []


wildcard_constraints:
    run_id="[0-9a-f]{12}",
    trunk_id="[0-9a-f]{12}",
