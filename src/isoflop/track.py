"""MLflow as a view of the study's files: idempotent by isoflop run id, never the source of truth.

Every training run's MLflow run carries the tag `isoflop.run_id` and `isoflop.result_sha256` (a hash of its
result.json). Logging a run that is already there with the same result does nothing; a run whose result
changed (it was retrained) replaces the old MLflow run. So re-running the workflow never duplicates runs,
and `sync_study` can rebuild a deleted store from `results/` alone.

Tracking settings are not rerun triggers: pointing a study at another store changes no result. So jobs get
them as a `Tracking` (built from the config's `tracking` section and the study's name), never as params.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from isoflop.layout import StudyLayout
from isoflop.workflow import read_json, write_json

if TYPE_CHECKING:  # pandas is imported where a table is read, not to register `isoflop` subcommands
    import pandas as pd

log = logging.getLogger("isoflop.track")

RUN_TAG = "isoflop.run_id"
RESULT_TAG = "isoflop.result_sha256"
KIND_TAG = "isoflop.kind"
BATCH_LIMIT = 100  # MLflow's log_batch takes at most 100 params / tags and 1000 metrics per call
METRIC_BATCH = 1000


@dataclass(frozen=True)
class Tracking:
    """Where a study's MLflow view lives: the store's URI, the experiment, and (for the default local store)
    the artifact root inside the study's results."""

    uri: str
    experiment: str
    study: str
    artifacts: str | None = None

    @classmethod
    def of(cls, config: dict) -> Tracking:
        """The config's `tracking.uri`, or a SQLite store inside the study's results."""
        layout = StudyLayout.of(config)
        uri, artifacts = config["tracking"]["uri"], None
        if not uri:
            uri = f"sqlite:///{layout.mlflow_db.resolve()}"
            artifacts = layout.mlflow_artifacts.resolve().as_uri()
        return cls(uri, config["tracking"]["experiment"] or config["study"], config["study"], artifacts)


def _client(tracking: Tracking):
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking.uri)


def _experiment_id(client, tracking: Tracking) -> str:
    experiment = client.get_experiment_by_name(tracking.experiment)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id
    return client.create_experiment(tracking.experiment, artifact_location=tracking.artifacts)


def _retrying(action, attempts: int = 8):
    """SQLite stores refuse concurrent writers now and then ('database is locked'): retry with backoff."""
    for attempt in range(attempts):
        try:
            return action()
        except Exception as err:  # noqa: BLE001 - MLflow wraps sqlite errors in several types
            if "locked" not in str(err).lower() or attempt == attempts - 1:
                raise
            time.sleep(0.2 * 2**attempt)


def create_store(tracking: Tracking, marker_path) -> None:
    """Create the store's schema and the study's experiment once, before any training job writes to it."""
    Path(marker_path).parent.mkdir(parents=True, exist_ok=True)
    client = _client(tracking)
    experiment_id = _retrying(lambda: _experiment_id(client, tracking))
    write_json(marker_path, {"tracking_uri": tracking.uri, "experiment": tracking.experiment,
                             "experiment_id": experiment_id})
    log.info("MLflow store ready: %s (experiment %s)", tracking.uri, experiment_id)


def _git_commit() -> str:
    """The commit of the checkout the workflow runs in (its working directory), "+dirty" with local edits."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (commit or "unknown") + ("+dirty" if dirty else "")


def _flatten(prefix: str, value, out: dict) -> dict:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), item, out)
    else:
        out[prefix] = value
    return out


def _find_runs(client, experiment_id: str, key: str, value: str):
    """Every active run of the experiment whose tag `key` equals `value` (all pages)."""
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string=f"tags.`{key}` = '{value}'", max_results=1000,
                                  page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _log_batches(client, mlflow_run_id: str, params: dict, metrics: list, tags: dict) -> None:
    from mlflow.entities import Param, RunTag

    param_list = [Param(k, str(v)[:6000]) for k, v in params.items()]
    tag_list = [RunTag(k, str(v)) for k, v in tags.items()]
    for start in range(0, len(param_list), BATCH_LIMIT):
        client.log_batch(mlflow_run_id, params=param_list[start : start + BATCH_LIMIT])
    for start in range(0, len(tag_list), BATCH_LIMIT):
        client.log_batch(mlflow_run_id, tags=tag_list[start : start + BATCH_LIMIT])
    for start in range(0, len(metrics), METRIC_BATCH):
        client.log_batch(mlflow_run_id, metrics=metrics[start : start + METRIC_BATCH])


def _metrics(result: dict, curve: pd.DataFrame | None):
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = []
    if curve is not None:  # long format: train rows per step, eval rows per (step, domain; "*" = overall)
        train = curve[curve["kind"] == "train"]
        for column in ("train_loss", "lr"):
            series = train[["step", column]].dropna()
            metrics.extend(Metric(column, float(v), now, int(s)) for s, v in zip(series["step"], series[column]))
        evals = curve[curve["kind"] == "eval"]
        for domain, rows in evals.groupby("domain"):
            suffix = "" if domain == "*" else f".{domain}"
            for column in ("val_loss", "val_bpb"):
                series = rows[["step", column]].dropna()
                metrics.extend(Metric(column + suffix, float(v), now, int(s))
                               for s, v in zip(series["step"], series[column]))
    final = {
        "val_loss": result.get("val_loss"),
        "val_bpb": result.get("val_bpb"),
        "tokens_per_second": result.get("tokens_per_second"),
        "train_seconds": result.get("train_seconds"),
        "wall_seconds": result.get("wall_seconds"),
    }
    for domain, value in (result.get("val_loss_by_domain") or {}).items():
        final[f"val_loss.{domain}"] = value
    for domain, value in (result.get("val_bpb_by_domain") or {}).items():
        final[f"val_bpb.{domain}"] = value
    step = int(result.get("steps") or 0)
    for key, value in final.items():
        if value is not None and not math.isnan(float(value)):
            metrics.append(Metric(f"final.{key}", float(value), now, step))
    return metrics


def log_training_run(tracking: Tracking, run: dict, run_dir) -> str:
    """Log one finished training run from its files; returns the MLflow run id. Idempotent (see module doc)."""
    run_dir = Path(run_dir)
    result_bytes = (run_dir / "result.json").read_bytes()
    result = json.loads(result_bytes)
    result_sha = hashlib.sha256(result_bytes).hexdigest()
    client = _client(tracking)
    experiment_id = _retrying(lambda: _experiment_id(client, tracking))
    existing = _find_runs(client, experiment_id, RUN_TAG, run["run_id"])
    for old in existing:
        if old.data.tags.get(RESULT_TAG) == result_sha:
            return old.info.run_id
    for old in existing:  # retrained: the new result replaces the old view
        client.delete_run(old.info.run_id)
    curve_path = run_dir / "curve.parquet"
    import pandas as pd

    curve = pd.read_parquet(curve_path) if curve_path.exists() else None
    params = _flatten("", result.get("spec", run["spec"]), {})
    params.update({
        "budget": run["budget"], "N": run["N"], "D": run["D"], "C": run["C"],
        "N_total": run["params"]["total"], "N_nonembed": run["params"]["nonembed"],
        "N_nonembed_head": run["params"]["nonembed_head"], "flops_convention": run["flops_convention"],
        "d_model": run["d_model"], "n_layers": run["n_layers"], "n_heads": run["n_heads"],
    })
    tags = {
        RUN_TAG: run["run_id"],
        RESULT_TAG: result_sha,
        KIND_TAG: "train",
        "isoflop.study": tracking.study,
        "isoflop.data_fingerprint": result.get("tokens_fingerprint") or "",
        "isoflop.status": result.get("status", "unknown"),
        "git.commit": _git_commit(),
        "torch.version": result.get("torch_version", ""),
        "torch.threads": result.get("threads", ""),
        "device": result.get("device", ""),
    }
    name = f"d{run['d_model']}-C{run['budget']:.0e}-{run['run_id'][:6]}"
    created = _retrying(lambda: client.create_run(experiment_id, run_name=name, tags={RUN_TAG: run["run_id"]}))
    mlflow_id = created.info.run_id
    _retrying(lambda: _log_batches(client, mlflow_id, params, _metrics(result, curve), tags))
    _retrying(lambda: client.log_artifact(mlflow_id, str(run_dir / "result.json")))
    status = "FINISHED" if result.get("status") == "ok" else "FAILED"
    _retrying(lambda: client.set_terminated(mlflow_id, status=status))
    return mlflow_id


def log_training_run_safely(tracking: Tracking, run: dict, run_dir) -> str | None:
    """`log_training_run` that never fails the training job: files are the truth, the sync repairs later."""
    try:
        return log_training_run(tracking, run, run_dir)
    except Exception as err:  # noqa: BLE001 - tracking must never fail a finished run
        log.warning("MLflow logging of run %s failed (the study's final sync retries): %s", run["run_id"], err)
        return None


def _log_summary_run(client, experiment_id: str, tracking: Tracking, kind: str, source: Path, params: dict,
                     values: dict[str, float], artifacts: list[Path]) -> str:
    """One MLflow run for a study-level output (the fit, the curation), idempotent by a hash of `source`."""
    from mlflow.entities import Metric

    source_sha = hashlib.sha256(source.read_bytes()).hexdigest()
    for old in _find_runs(client, experiment_id, KIND_TAG, kind):
        if old.data.tags.get(RESULT_TAG) == source_sha:
            return old.info.run_id
        client.delete_run(old.info.run_id)
    mlflow_id = client.create_run(experiment_id, run_name=kind, tags={KIND_TAG: kind}).info.run_id
    now = int(time.time() * 1000)
    metrics = [Metric(key, float(value), now, 0) for key, value in values.items()]
    tags = {KIND_TAG: kind, RESULT_TAG: source_sha, "isoflop.study": tracking.study, "git.commit": _git_commit()}
    _log_batches(client, mlflow_id, params, metrics, tags)
    for path in artifacts:
        if path.exists():
            client.log_artifact(mlflow_id, str(path), artifact_path="figures" if path.suffix == ".png" else None)
    client.set_terminated(mlflow_id, status="FINISHED")
    return mlflow_id


def _log_fit_run(client, experiment_id: str, tracking: Tracking, layout: StudyLayout) -> str:
    laws = json.loads(layout.laws.read_bytes())
    values = {f"{law}.{key}": value for law in ("chinchilla", "isoflop")
              for key, value in ((laws.get(law) or {}).get("params") or {}).items() if isinstance(value, (int, float))}
    params = {**laws.get("settings", {}), "flops_convention": laws.get("flops_convention")}
    figures = sorted(p for p in layout.figures.glob("*.png") if not p.name.startswith("curation_"))
    return _log_summary_run(client, experiment_id, tracking, "fit", layout.laws, params, values,
                            [layout.laws, layout.runs_table, layout.report, *figures])


def _log_curation_run(client, experiment_id: str, tracking: Tracking, curated: Path, figures: Path) -> str:
    """The curation report as a run: documents and bytes kept per domain, the curation.json and its figures."""
    summary = json.loads((curated / "curation.json").read_text())
    values = {}
    for split, domains in summary["split"].items():
        for domain, entry in domains.items():
            values[f"{split}.documents.{domain}"] = entry["documents"]
            values[f"{split}.bytes.{domain}"] = entry["bytes"]
    for domain, entry in summary["ingest"]["by_domain"].items():
        values[f"ingested.documents.{domain}"] = entry["documents"]
    curation = summary["curation"]
    params = _flatten("", {"curate": curation["config"], "corpus.shards": curation["shards"]}, {})
    return _log_summary_run(client, experiment_id, tracking, "curation", curated / "curation.json", params, values,
                            [curated / "curation.json", *sorted(figures.glob("curation_*.png"))])


def _mark_plan_membership(client, experiment_id: str, current: set[str]) -> None:
    """Tag each training run `isoflop.in_plan` true/false: runs of an earlier config stay browsable as history
    but filter out with `tags.isoflop.in_plan = 'true'`."""
    for run in _find_runs(client, experiment_id, KIND_TAG, "train"):
        wanted = "true" if run.data.tags.get(RUN_TAG) in current else "false"
        if run.data.tags.get("isoflop.in_plan") != wanted:
            client.set_tag(run.info.run_id, "isoflop.in_plan", wanted)


def sync_study(tracking: Tracking, layout: StudyLayout, plan_path, out_path) -> dict:
    """Make the store match the files: every run of the runs table (logging any that are missing or stale),
    the fit run with the laws, report and figures as artifacts, and the curation run. Reads the plan, the
    runs' folders, the runs table, laws.json, the report and figures, and the curated folder; writes
    `out_path` mapping ids."""
    import pandas as pd

    plan = read_json(plan_path)
    table = pd.read_parquet(layout.runs_table)
    mapping = {}
    for run_id in table["run_id"]:
        mapping[run_id] = log_training_run(tracking, plan["runs"][run_id], layout.run_dir(run_id))
    client = _client(tracking)
    experiment_id = _experiment_id(client, tracking)
    _mark_plan_membership(client, experiment_id, set(mapping))
    fit_id = _log_fit_run(client, experiment_id, tracking, layout)
    curation_id = _log_curation_run(client, experiment_id, tracking, layout.curated(plan["ids"]["curated"]),
                                    layout.figures)
    summary = {"tracking_uri": tracking.uri, "experiment_id": experiment_id, "runs": mapping,
               "fit": fit_id, "curation": curation_id}
    write_json(out_path, summary)
    log.info("MLflow holds %d training runs, the fit run %s and the curation run %s", len(mapping), fit_id,
             curation_id)
    return summary


def register(subparsers) -> None:
    ui = subparsers.add_parser(
        "mlflow-ui", help="open the MLflow UI on a study's tracking store (bound to 127.0.0.1)",
        description="Start `mlflow ui` on the study's store (the config's tracking.uri, or its SQLite file).",
    )
    ui.add_argument("--config", default="config.yaml", help="study config (default: config.yaml)")
    ui.add_argument("--port", type=int, default=5000, help="port on 127.0.0.1 (default: 5000)")
    ui.set_defaults(func=_ui_command)
    sync = subparsers.add_parser(
        "track-sync", help="rebuild or repair a study's MLflow store from results/",
        description="Log every finished run and the fit of a study to MLflow from its files (idempotent).",
    )
    sync.add_argument("--config", default="config.yaml", help="study config (default: config.yaml)")
    sync.set_defaults(func=_sync_command)


def _ui_command(args) -> int:
    from isoflop.config import load_config
    from isoflop.errors import UserError

    config = load_config(args.config)
    uri = Tracking.of(config).uri
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).exists():
        raise UserError(f"no MLflow store yet at {uri}: run the study first (make study)")
    if uri.startswith("http"):
        print(f"the study tracks to a server: open {uri}")
        return 0
    command = [str(Path(sys.executable).parent / "mlflow"), "ui", "--backend-store-uri", uri,
               "--host", "127.0.0.1", "--port", str(args.port)]
    print(f"MLflow UI for study '{config['study']}' at http://127.0.0.1:{args.port}", flush=True)
    os.execv(command[0], command)
    return 0


def _sync_command(args) -> int:
    from isoflop.config import load_config
    from isoflop.errors import UserError

    config = load_config(args.config)
    tracking, layout = Tracking.of(config), StudyLayout.of(config)
    if not layout.plan.exists():
        raise UserError(f"no plan at {layout.plan}: run the study first (make study)")
    create_store(tracking, layout.store_marker)
    summary = sync_study(tracking, layout, layout.plan, layout.tracked)
    print(f"{len(summary['runs'])} training runs and the fit are in {summary['tracking_uri']}")
    return 0
