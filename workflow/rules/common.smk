# Validated config, content-hash ids and the run grid, computed once when the workflow is parsed.
import json
import sys
from pathlib import Path

from isoflop.config import validate_config
from isoflop.corpus import fingerprint as corpus_fingerprint
from isoflop.errors import UserError
from isoflop.plan import content_id, make_plan, stage_ids

try:
    config.update(validate_config(config))
    IDS = stage_ids(config, corpus_fingerprint(config["corpus"]))
    PLAN = make_plan(config, IDS["tokens"])
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
