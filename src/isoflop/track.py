"""MLflow as a view of the study's files: idempotent by isoflop run id, never the source of truth.

Every training run's MLflow run carries the tag `isoflop.run_id` and `isoflop.result_sha256` (a hash of its
result.json), set last, once everything else is logged: so a run half-logged when its logger was killed (or
ran out of disk) carries no hash and is replaced. Logging a run that is already there with the same result
does nothing; a run whose result changed (it was retrained) replaces the old MLflow run. So re-running the
workflow never duplicates runs, and `sync_study` can rebuild a deleted store from `results/` alone.

A training run costs the store five writes in this order (six with its dataset input): the run created with
all its tags, one log_batch of its params and metrics, result.json as an artifact, the end status, the result
hash. A sync logs a server's runs `SYNC_THREADS` at a time (each run's writes still in that order), a SQLite
store's one at a time (it takes one writer): bench/bench_track.py measures both.

The view is laid out for a researcher: one parent run per study plan (tag `isoflop.plan_id`) holding the
training runs, the curation and the fit as children; run names state N and the budget; start and end times
and every metric point's timestamp are when the training loop ran (result.json's `started_at`/`ended_at`,
curve.parquet's `seconds`), not when the view was written.

Tracking settings are not rerun triggers: pointing a study at another store changes no result. So jobs get
them as a `Tracking` (built from the config's `tracking` section and the study's name), never as params.

Tracking never blocks training: no job that training depends on talks to the store, every client checks the
store first (a server's /health within `PROBE_SECONDS`, a SQLite file's header) and talks to it with short
HTTP timeouts, so a dead server costs a job seconds and one line in its log; the study's sync then marks its
output pending and the next workflow run (or `isoflop track-sync`) fills the store. A server that answers its
/health but hangs costs a live-logging job at most `tracking.deadline_seconds` in all, and never costs another
job: no request is made under the store lock.

Every lookup is keyed by the study (`STUDY_TAG`), so studies sharing an experiment or a store stay apart.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import hashlib
import json
import logging
import math
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from isoflop.layout import StudyLayout
from isoflop.ledger import mlflow_metrics
from isoflop.tracking_server import UI_ENVIRONMENT  # `mlflow ui` runs without the GenAI job runner too
from isoflop.workflow import read_json, write_json

if TYPE_CHECKING:  # pandas is imported where a table is read, not to register `isoflop` subcommands
    import pandas as pd

log = logging.getLogger("isoflop.track")

RUN_TAG = "isoflop.run_id"
RESULT_TAG = "isoflop.result_sha256"
KIND_TAG = "isoflop.kind"
PLAN_TAG = "isoflop.plan_id"
PARENT_TAG = "mlflow.parentRunId"
# every run a study logs carries its study's name, and every lookup filters by it: two studies that share an
# experiment (or a store) never find, move or replace each other's runs, even runs of the same run id
STUDY_TAG = "isoflop.study"
MIXTURE_TAG = "isoflop.mixture_id"
NOTE_TAG = "mlflow.note.content"  # what the UI shows as a run's or an experiment's description
# MLflow 3 opens an experiment without this tag on its GenAI "Traces" page; this value opens the runs table
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
# The default store records artifact locations under this scheme, which whoever serves the store maps to a
# folder (`--artifacts-destination`): a copied results/ folder then serves its own copy of the artifacts
PROXIED = "mlflow-artifacts:/"
BATCH_LIMIT = 100  # MLflow's log_batch takes at most 100 params / tags and 1000 metrics per call
METRIC_BATCH = 1000
SYNC_THREADS = 8  # training runs a sync logs to a server at once (bench/bench_track.py)
PAGE_SIZE = 1000  # runs per search_runs page: lookups filter by tag and page, never fetch a whole store
# A dead or hung server costs a job seconds, not MLflow's default of 7 retries of 120 s with doubling backoff;
# each of these set in the environment wins
HTTP_LIMITS = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "15", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
               "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}
PROBE_SECONDS = 3.0
SQLITE_HEADER = b"SQLite format 3\x00"
REBUILD_HINT = "rebuild it from the run files with `isoflop track-sync --rebuild`"


class TrackingUnavailable(Exception):
    """The store cannot be reached or read; the message is one line naming it."""


class StoreCorrupt(TrackingUnavailable):
    """The SQLite store is not a database (any more); the message says how to rebuild it."""


@dataclass(frozen=True)
class Tracking:
    """Where a study's MLflow view lives: the store's URI, the experiment, the study's plan.json (where a run
    logged live finds its parent) and, for the default local store, the folder its artifacts live in."""

    uri: str
    experiment: str
    study: str
    plan: str
    lock: str
    artifacts: str | None = None
    deadline: float = 60.0  # seconds a job's live logging may take in all (`tracking.deadline_seconds`)

    @classmethod
    def of(cls, config: dict) -> Tracking:
        """The config's `tracking.uri`, else `MLFLOW_TRACKING_URI` from the environment, else a SQLite store
        inside the study's results. Only where the view goes depends on it, never a result."""
        layout = StudyLayout.of(config)
        uri, artifacts = config["tracking"]["uri"] or os.environ.get("MLFLOW_TRACKING_URI"), None
        if not uri:
            uri = f"sqlite:///{layout.mlflow_db.resolve()}"
            artifacts = str(layout.mlflow_artifacts.resolve())
        return cls(uri, config["tracking"]["experiment"] or config["study"], config["study"],
                   str(layout.plan.resolve()), str(layout.store_lock.resolve()), artifacts,
                   float(config["tracking"]["deadline_seconds"]))


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def check_store(tracking: Tracking) -> None:
    """Raise `TrackingUnavailable` within `PROBE_SECONDS` (no MLflow import, no retries) where the store cannot
    work: a server that does not answer its /health, a SQLite file that is not a database."""
    db = _sqlite_path(tracking.uri)
    if db is not None:
        if db.exists() and db.stat().st_size:
            with open(db, "rb") as handle:
                if handle.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
                    raise StoreCorrupt(f"MLflow store {db} is not a SQLite database: {REBUILD_HINT}")
    elif tracking.uri.startswith(("http://", "https://")):
        try:
            urllib.request.urlopen(f"{tracking.uri.rstrip('/')}/health", timeout=PROBE_SECONDS).close()
        except (OSError, ValueError) as err:
            reason = getattr(err, "reason", None) or err
            raise TrackingUnavailable(f"MLflow server {tracking.uri} does not answer ({reason})") from None


def corrupt_store_notice(tracking: Tracking, config_files) -> str | None:
    """One line for a study whose SQLite store is not a database, with the exact command that repairs it (the
    config files the workflow was given), or None. Reads the file's header: no MLflow import, no network; so
    the workflow says it on every run, a run with nothing to do included (workflow/rules/track.smk)."""
    if _sqlite_path(tracking.uri) is None:
        return None
    try:
        check_store(tracking)
    except StoreCorrupt as err:
        config = " ".join(f"--config {path}" for path in config_files) or "--config <your study config>"
        return (f"isoflop: {err}; only that command repairs it (the workflow's sync leaves a corrupt store as it "
                f"is): isoflop track-sync --rebuild {config}")
    return None


def _one_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0][:300] if lines else type(err).__name__


def _is_corrupt(err: BaseException) -> bool:
    text = str(err).lower()
    return "file is not a database" in text or "database disk image is malformed" in text


@contextlib.contextmanager
def _locked(path):
    """Hold an exclusive fcntl lock on `path` (released when the process dies, so never stale)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _open(tracking: Tracking):
    """(client, experiment id) for the study's store, after `check_store`. A new SQLite store's schema is
    created under the store lock: concurrent jobs creating it at once would race MLflow's migrations. A
    server is never asked anything under the lock: one that hangs would make every job wait for the one
    holding it (the server orders concurrent requests itself; `_experiment_id` takes a lost race)."""
    check_store(tracking)
    # synchronous logging (a job's log is complete when it ends), and no "View run ... at" line per run
    quiet = {"MLFLOW_ENABLE_ASYNC_LOGGING": "false", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}
    for key, value in {**HTTP_LIMITS, **quiet}.items():
        os.environ.setdefault(key, value)
    from mlflow.tracking import MlflowClient

    local = _sqlite_path(tracking.uri) is not None
    try:
        with _locked(tracking.lock) if local else contextlib.nullcontext():
            client = MlflowClient(tracking_uri=tracking.uri)
            return client, _retrying(lambda: _experiment_id(client, tracking))
    except Exception as err:
        if _is_corrupt(err):
            raise StoreCorrupt(f"MLflow store {tracking.uri} is corrupt ({_one_line(err)}): {REBUILD_HINT}") from None
        raise


def _experiment_id(client, tracking: Tracking) -> str:
    """The study's experiment (created, or restored if deleted), tagged as model development and described."""
    experiment = client.get_experiment_by_name(tracking.experiment)
    if experiment is None:
        location = None  # a tracking server chooses where its artifacts go
        if tracking.artifacts:
            location = PROXIED + re.sub(r"[^A-Za-z0-9_.-]", "_", tracking.experiment)
        try:
            experiment = client.get_experiment(client.create_experiment(tracking.experiment, location))
        except Exception:  # noqa: BLE001 - another job created it since (MLflow's RESOURCE_ALREADY_EXISTS)
            experiment = client.get_experiment_by_name(tracking.experiment)
            if experiment is None:
                raise
    elif experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    wanted = {**EXPERIMENT_KIND, NOTE_TAG: (
        f"Scaling-law study `{tracking.study}` (isoflop): one parent run per plan of the study, with its training "
        "runs, the curation and the fit as children. A view of the study's files under results/: "
        "`isoflop track-sync` rebuilds it.")}
    for key, value in wanted.items():
        if experiment.tags.get(key) != value:
            try:
                client.set_experiment_tag(experiment.experiment_id, key, value)
            except Exception:  # noqa: BLE001 - another job set it first (a server's unique key on the tag)
                if client.get_experiment(experiment.experiment_id).tags.get(key) != value:
                    raise
    return experiment.experiment_id


def _retrying(action, attempts: int = 8):
    """SQLite stores refuse concurrent writers now and then ('database is locked'): retry with backoff."""
    for attempt in range(attempts):
        try:
            return action()
        except Exception as err:  # noqa: BLE001 - MLflow wraps sqlite errors in several types
            if "locked" not in str(err).lower() or attempt == attempts - 1:
                raise
            time.sleep(0.2 * 2**attempt)


@functools.cache
def _source_tags() -> dict[str, str]:
    """MLflow's source tags for the isoflop checkout that holds this code (the UI shows them as the run's
    Source), and whether that checkout had local edits."""
    here = Path(__file__).parent

    def git(*args) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, timeout=10, cwd=here).stdout.strip()

    try:
        commit, top = git("rev-parse", "HEAD"), git("rev-parse", "--show-toplevel")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        commit, top, dirty = "", "", ""
    return {"mlflow.source.type": "LOCAL", "mlflow.source.name": str(Path(top) / "Snakefile") if top else "isoflop",
            "mlflow.source.git.commit": commit or "unknown", "isoflop.git.dirty": str(bool(dirty)).lower()}


def _flatten(prefix: str, value, out: dict) -> dict:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), item, out)
    else:
        out[prefix] = value
    return out


def _find_runs(client, experiment_id: str, study: str, tags: dict[str, str]):
    """Every active run of `study` in the experiment with all of `tags` (page by page), oldest first."""
    where = " and ".join(f"tags.`{key}` = '{value}'" for key, value in {STUDY_TAG: study, **tags}.items())
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string=where, max_results=PAGE_SIZE, page_token=token,
                                  order_by=["attributes.start_time ASC"])
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _log_batches(client, mlflow_run_id: str, params: dict, metrics: list, tags: dict) -> None:
    """Params, metrics and tags in as few log_batch requests as MLflow's limits allow (one for a training run)."""
    from mlflow.entities import Param, RunTag

    param_list = [Param(k, str(v)[:6000]) for k, v in params.items()]
    tag_list = [RunTag(k, str(v)) for k, v in tags.items()]
    while param_list or tag_list or metrics:
        batch_params, param_list = param_list[:BATCH_LIMIT], param_list[BATCH_LIMIT:]
        batch_tags, tag_list = tag_list[:BATCH_LIMIT], tag_list[BATCH_LIMIT:]
        room = METRIC_BATCH - len(batch_params) - len(batch_tags)
        batch_metrics, metrics = metrics[:room], metrics[room:]
        client.log_batch(mlflow_run_id, params=batch_params, metrics=batch_metrics, tags=batch_tags)


def _log_artifact(client, tracking: Tracking, run, path, artifact_path: str | None = None) -> None:
    """Log a file as an artifact of `run`, to the repository its artifact URI names (MlflowClient.log_artifact
    would first fetch the run again to learn that URI). The default store has no server in between, so files
    for a proxied location are written straight into the folder that `isoflop mlflow-ui` serves it from."""
    uri = run.info.artifact_uri
    if tracking.artifacts and uri.startswith(PROXIED):
        from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

        repo = LocalArtifactRepository(str(Path(tracking.artifacts) / uri[len(PROXIED):]))
    else:
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        repo = get_artifact_repository(uri, tracking_uri=client.tracking_uri)
    repo.log_artifact(str(path), artifact_path)


def _log_dict(client, tracking: Tracking, run, value: dict, name: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_text(json.dumps(value, indent=2, sort_keys=True))
        _log_artifact(client, tracking, run, path)


def _short(value: float) -> str:
    """3 significant digits, the exponent without '+' or leading zeros: 9.5e11, 4e9, 0.02, 1e-5."""
    return re.sub(r"e\+?(-?)0*(\d)", r"e\1\2", f"{value:.3g}")


def _size(n: float) -> str:
    """A parameter count to 3 significant digits with k, M or B: 52.3k, 1.23B."""
    return next((f"{n / scale:.3g}{unit}" for scale, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")) if n >= scale),
                f"{n:.3g}")


def _run_name(run: dict) -> str:
    """N and the planned budget exactly (3 significant digits), e.g. N52.3k-C9.5e11; the learning-rate
    multiplier and replicate where they are not the default."""
    name = f"N{_size(float(run['N']))}-C{_short(run['budget'])}"
    if run.get("lr_multiplier", 1.0) != 1.0:
        name += f"-lrx{_short(run['lr_multiplier'])}"
    if run.get("replicate"):
        name += f"-r{run['replicate']}"
    return name


def _run_times(result: dict, result_path: Path) -> tuple[float, float]:
    """(start, end) in epoch seconds; results written before the loop recorded them end at their file's time."""
    ended = result.get("ended_at") or result_path.stat().st_mtime
    return result.get("started_at") or ended - (result.get("wall_seconds") or 0.0), ended


def _metrics(run: dict, result: dict, curve: pd.DataFrame | None, started: float, ended: float):
    """Series per step stamped when the step ran (train loss, lr, and tokens and FLOPs seen so far, to choose
    as the x-axis), validation series per evaluation, and single values (final results, N, D, C, budget) at
    step 0."""
    from mlflow.entities import Metric

    def stamp(seconds) -> int:  # curves written before the loop recorded times put every point at the end
        return int(1000 * (started + seconds if seconds is not None and not math.isnan(seconds) else ended))

    metrics = []
    if curve is not None:  # long format: train rows per step, eval rows per (step, domain; "*" = overall)
        import numpy as np
        import pandas as pd

        # whole columns picked by row masks: pandas' cost per selection was most of a run's logging time
        columns = {name: curve[name].to_numpy() for name in curve.columns}
        for name in ("kind", "domain"):  # labels, missing as None (a string column's NA compares as NA)
            columns[name] = curve[name].to_numpy(dtype=object, na_value=None)
        seconds = columns.get("seconds", np.full(len(curve), math.nan))
        train, evals = columns["kind"] == "train", columns["kind"] == "eval"
        # in floating point: integer tokens times C overflow int64 at real budgets; D / D is exactly 1.0, so the
        # series ends at the run's C
        columns["flops"] = columns["tokens"].astype(float) / float(run["D"]) * float(run["C"])

        def series(key: str, rows, values, steps) -> None:
            picked = np.flatnonzero(rows & pd.notna(values))
            metrics.extend(Metric(key, float(v), stamp(t), int(s)) for v, t, s in
                           zip(values[picked].tolist(), seconds[picked].tolist(), steps[picked].tolist()))

        for column in ("train_loss", "lr", "tokens", "flops"):
            series(column, train, columns[column], columns["step"])
        # the loss against tokens as a chart of its own: MLflow's x-axis is a step, and a step may be the token
        # count (the UI's metric page then draws loss against tokens with no axis configuration)
        series("train_loss_vs_tokens", train, columns["train_loss"], columns["tokens"])
        series("val_loss_vs_tokens", evals & (columns["domain"] == "*"), columns["val_loss"], columns["tokens"])
        for domain in sorted({domain for domain in columns["domain"][evals].tolist() if domain is not None}):
            suffix = "" if domain == "*" else f".{domain}"
            for column in ("val_loss", "val_bpb"):
                series(column + suffix, evals & (columns["domain"] == domain), columns[column], columns["step"])
    single = {
        "final.val_loss": result.get("val_loss"),
        "final.val_bpb": result.get("val_bpb"),
        "final.tokens_per_second": result.get("tokens_per_second"),
        "final.train_seconds": result.get("train_seconds"),
        "final.wall_seconds": result.get("wall_seconds"),
        "budget": run["budget"], "N": run["N"], "D": run["D"], "C": run["C"],
        "N_total": run["params"]["total"], "N_nonembed": run["params"]["nonembed"],
        "N_nonembed_head": run["params"]["nonembed_head"],
    }
    for domain, value in (result.get("val_loss_by_domain") or {}).items():
        single[f"final.val_loss.{domain}"] = value
    for domain, value in (result.get("val_bpb_by_domain") or {}).items():
        single[f"final.val_bpb.{domain}"] = value
    from isoflop.tasks.results import task_tracking_metrics

    single.update(task_tracking_metrics(result))
    metrics.extend(Metric(key, float(value), stamp(None), 0) for key, value in single.items()
                   if value is not None and not math.isnan(float(value)))
    return metrics


def _study_run(client, experiment_id: str, tracking: Tracking) -> str | None:
    """The MLflow id of the study's parent run for its current plan (created if missing), or None before the
    plan exists. Two jobs logging live at once may both create it: `sync_study` keeps the oldest."""
    plan_path = Path(tracking.plan)
    if not plan_path.exists():
        return None
    plan_id = read_json(plan_path)["plan_id"]
    existing = _find_runs(client, experiment_id, tracking.study, {KIND_TAG: "study", PLAN_TAG: plan_id})
    if existing:
        return existing[0].info.run_id
    tags = {KIND_TAG: "study", PLAN_TAG: plan_id, STUDY_TAG: tracking.study, **_source_tags()}
    started = int(1000 * plan_path.stat().st_mtime)  # the study started when its plan was written
    return client.create_run(experiment_id, start_time=started, tags=tags,
                             run_name=f"{tracking.study}-plan-{plan_id[:6]}").info.run_id


def log_training_run(tracking: Tracking, run: dict, run_dir) -> str:
    """Log one finished training run from its files, as a child of the study's parent run; returns the MLflow
    run id. Idempotent (see module doc)."""
    client, experiment_id = _open(tracking)
    parent = _retrying(lambda: _study_run(client, experiment_id, tracking))
    existing = _find_runs(client, experiment_id, tracking.study, {RUN_TAG: run["run_id"]})
    return _log_training_run(client, experiment_id, tracking, run, Path(run_dir), parent, existing)


def _log_training_run(client, experiment_id: str, tracking: Tracking, run: dict, run_dir: Path,
                      parent: str | None, existing: list) -> str:
    """`log_training_run` given the store, the parent and the MLflow runs already tagged with this run's id."""
    result_bytes = (run_dir / "result.json").read_bytes()
    result = json.loads(result_bytes)
    result_sha = hashlib.sha256(result_bytes).hexdigest()
    for old in existing:
        if old.data.tags.get(RESULT_TAG) == result_sha:
            if parent and old.data.tags.get(PARENT_TAG) != parent:  # a run kept by a new plan joins its parent
                client.set_tag(old.info.run_id, PARENT_TAG, parent)
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
        KIND_TAG: "train",
        "isoflop.in_plan": "true",  # it was trained from the current plan; the sync flips runs of older plans
        STUDY_TAG: tracking.study,
        "isoflop.data_fingerprint": result.get("tokens_fingerprint") or "",
        "isoflop.status": result.get("status", "unknown"),
        **_source_tags(),
        "torch.version": result.get("torch_version", ""),
        "torch.threads": result.get("threads", ""),
        "device": result.get("device", ""),
        **({PARENT_TAG: parent} if parent else {}),
        **({MIXTURE_TAG: run["mixture_id"]} if run.get("mixture_id") else {}),
    }
    started, ended = _run_times(result, run_dir / "result.json")
    metrics = _metrics(run, result, curve, started, ended)
    # created with its tags (among them the ones the next sync searches by), so a sync killed before the run
    # is complete leaves a run that sync finds (and, lacking its result tag, replaces), never an untagged orphan
    created = _retrying(lambda: client.create_run(experiment_id, start_time=int(1000 * started),
                                                  run_name=_run_name(run),
                                                  tags={key: str(value) for key, value in tags.items()}))
    mlflow_id = created.info.run_id
    _retrying(lambda: _log_batches(client, mlflow_id, params, metrics, {}))
    _retrying(lambda: _log_artifact(client, tracking, created, run_dir / "result.json"))
    if result.get("tokens_fingerprint"):
        _retrying(lambda: client.log_inputs(mlflow_id, datasets=[_corpus_input(result)]))
    status = "FINISHED" if result.get("status") == "ok" else "FAILED"
    _retrying(lambda: client.set_terminated(mlflow_id, status=status, end_time=int(1000 * ended)))
    _retrying(lambda: client.set_tag(mlflow_id, RESULT_TAG, result_sha))  # complete (see module doc)
    return mlflow_id


def _corpus_input(result: dict):
    """The run's training data as an MLflow dataset input: the token folder (by its content fingerprint) and
    the mixture the run drew from it, so the UI lists which runs saw the same data."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    fingerprint = result["tokens_fingerprint"]
    mixture = (result.get("spec") or {}).get("mixture")
    dataset = Dataset(name=f"tokens-{fingerprint[:12]}", digest=fingerprint[:36], source_type="local",
                      source=json.dumps({"tokens_fingerprint": fingerprint}),
                      profile=json.dumps({"mixture": mixture}) if mixture else None)
    return DatasetInput(dataset, tags=[InputTag("mlflow.data.context", "training")])


def log_training_run_safely(tracking: Tracking, run: dict, run_dir) -> str | None:
    """`log_training_run` that never fails the training job and never takes it longer than `tracking.deadline`
    seconds: files are the truth, the sync repairs later. A failure, or the deadline passing (a server that
    answers its /health but hangs on the API), is one line in the job's log (with the traceback only where
    the store was not to blame). Past the deadline the logging thread is left behind: a daemon, it ends
    with the job."""
    outcome: dict = {}

    def attempt() -> None:
        try:
            outcome["id"] = log_training_run(tracking, run, run_dir)
        except Exception as err:  # noqa: BLE001 - tracking must never fail a finished run
            outcome["error"] = err

    worker = threading.Thread(target=attempt, name="isoflop-live-logging", daemon=True)
    worker.start()
    worker.join(tracking.deadline)
    if worker.is_alive():
        log.warning("MLflow logging of run %s given up after %g s (tracking.deadline_seconds): the store at %s "
                    "does not answer in time; the study's sync fills it in", run["run_id"], tracking.deadline,
                    tracking.uri)
        return None
    if "error" in outcome:
        err = outcome["error"]
        log.warning("MLflow logging of run %s skipped: %s (the study's sync fills it in)", run["run_id"],
                    _one_line(err), exc_info=(type(err), err, err.__traceback__)
                    if not isinstance(err, TrackingUnavailable) else False)
        return None
    return outcome["id"]


def _log_summary_run(client, experiment_id: str, tracking: Tracking, parent: str, kind: str, *, params: dict,
                     values: dict[str, float], artifacts: list[Path], documents: dict[str, dict] | None = None,
                     description: str = "") -> str:
    """One MLflow run for a study-level output (the fit, the curation), a child of `parent`, idempotent by a
    hash of everything it shows. `documents`: name -> a dict logged as a JSON artifact."""
    from mlflow.entities import Metric

    artifacts = [path for path in artifacts if path.exists()]
    digest = hashlib.sha256(json.dumps([params, values, documents, description], sort_keys=True, default=str)
                            .encode())
    for path in artifacts:
        digest.update(path.read_bytes())
    source_sha = digest.hexdigest()
    for old in _find_runs(client, experiment_id, tracking.study, {KIND_TAG: kind}):
        if old.data.tags.get(RESULT_TAG) == source_sha:
            if old.data.tags.get(PARENT_TAG) != parent:
                client.set_tag(old.info.run_id, PARENT_TAG, parent)
            return old.info.run_id
        client.delete_run(old.info.run_id)
    # it ran from its first file's writing to its last's (the fit's laws.json, then the report's files)
    written = [int(1000 * path.stat().st_mtime) for path in artifacts] or [int(time.time() * 1000)]
    created = client.create_run(experiment_id, run_name=kind, tags={KIND_TAG: kind, STUDY_TAG: tracking.study},
                                start_time=min(written))
    metrics = [Metric(key, float(value), max(written), 0) for key, value in values.items()]
    tags = {KIND_TAG: kind, STUDY_TAG: tracking.study, PARENT_TAG: parent,
            **_source_tags(), **({NOTE_TAG: description} if description else {})}
    _log_batches(client, created.info.run_id, params, metrics, tags)
    for path in artifacts:
        _log_artifact(client, tracking, created, path, "figures" if path.suffix == ".png" else None)
    for name, value in (documents or {}).items():
        _log_dict(client, tracking, created, value, name)
    client.set_terminated(created.info.run_id, status="FINISHED", end_time=max(written))
    client.set_tag(created.info.run_id, RESULT_TAG, source_sha)  # complete (see module doc)
    return created.info.run_id


def report_summary(report: str) -> str:
    """The report's summary section (the decision: its first lines) and its warnings section, as markdown: the fit
    run's description. A report without a summary section gives its first paragraph instead."""
    sections = {}
    for block in report.split("\n## ")[1:]:
        heading, _, body = block.partition("\n")
        sections[heading.strip()] = body.strip()
    if "Summary" in sections:
        first = sections["Summary"]
    else:
        blocks = [block.strip() for block in report.split("\n\n") if block.strip()]
        first = next((block for block in blocks if not block.startswith("#")), "")
    warnings = sections.get("Warnings")
    return "\n\n".join([first, *(["**Warnings**", warnings] if warnings else [])])


# An approach as a metric (MLflow metrics are numbers): its number in Hoffmann et al. 2022
APPROACH_NUMBER = {"envelope": 1, "isoflop": 2, "chinchilla": 3}


def fit_values(laws: dict) -> dict[str, float]:
    """The fit run's metrics: each law's estimates and their 95% interval bounds, and the decision the report
    leads with: the trusted approach (its number), its backtest error and trust horizon, and its N*, D* and loss
    forecast at the next budget with their intervals."""
    values = {}
    for law in ("chinchilla", "isoflop"):
        fitted = laws.get(law) or {}
        for key, value in (fitted.get("params") or {}).items():
            if isinstance(value, (int, float)):
                values[f"{law}.{key}"] = value
                for bound, name in zip((fitted.get("ci95") or {}).get(key) or (), ("lo95", "hi95")):
                    if isinstance(bound, (int, float)):
                        values[f"{law}.{key}.{name}"] = bound
    verdict, nxt = laws.get("verdict") or {}, laws.get("next_budget") or {}
    if verdict:
        values["trusted.approach"] = APPROACH_NUMBER[verdict["approach"]]
        for key in ("backtest_error", "trust_factor"):
            if isinstance(verdict.get(key), (int, float)):
                values[f"trusted.{key}"] = verdict[key]
    for key in ("C", "N_opt", "D_opt", "loss"):
        if isinstance(nxt.get(key), (int, float)):
            values[f"next.{key}"] = float(nxt[key])
            for bound, name in zip((nxt.get("ci95") or {}).get(key) or (), ("lo95", "hi95")):
                if isinstance(bound, (int, float)):
                    values[f"next.{key}.{name}"] = bound
    for bound, name in zip(nxt.get("loss_pred95") or (), ("pred_lo95", "pred_hi95")):
        if isinstance(bound, (int, float)):
            values[f"next.loss.{name}"] = bound
    return values


def _log_fit_run(client, experiment_id: str, tracking: Tracking, layout: StudyLayout, parent: str,
                 config: dict) -> str:
    """The fit: `fit_values` as metrics, the trusted approach as a param, the report's summary as the
    description, and laws.json, runs.parquet, report.md, the figures, the resolved config and plan.json."""
    laws = json.loads(layout.laws.read_bytes())
    params = {**laws.get("settings", {}), "flops_convention": laws.get("flops_convention")}
    if laws.get("verdict"):
        params["trusted_approach"] = laws["verdict"]["approach"]
    figures = sorted(p for p in layout.figures.glob("*.png") if not p.name.startswith("curation_"))
    description = report_summary(layout.report.read_text()) if layout.report.exists() else ""
    values = fit_values(laws)
    if layout.forecast_scores.exists():  # the ledger's scores so far (forecast runs, rule score_forecasts)
        values.update(mlflow_metrics(json.loads(layout.forecast_scores.read_bytes())["forecasts"]))
    return _log_summary_run(client, experiment_id, tracking, parent, "fit", params=params, values=values,
                            artifacts=[layout.laws, layout.runs_table, layout.report, layout.plan, *figures],
                            documents={"config.json": config}, description=description)


def _log_curation_run(client, experiment_id: str, tracking: Tracking, parent: str, curated: Path,
                      figures: Path) -> str:
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
    return _log_summary_run(client, experiment_id, tracking, parent, "curation", params=params, values=values,
                            artifacts=[curated / "curation.json", *sorted(figures.glob("curation_*.png"))])


def _log_mixture_search(client, experiment_id: str, tracking: Tracking, layout: StudyLayout, parent: str,
                        known: dict[str, list]) -> dict:
    """The mixture search: one run per stage (each search round, with its fit's scores, and the final
    verification), a child of the study run, with that stage's training runs as its children, each tagged
    with its mixture id. Returns stage -> {"run": its MLflow id, "runs": run id -> MLflow id}."""
    logged = {}
    for runs_path in sorted(layout.mix.glob("*/runs.json")):
        stage = runs_path.parent.name
        fit_path = runs_path.with_name("fit.json")
        values = {}
        if fit_path.exists():
            for model, scores in read_json(fit_path)["cross_validated"].items():
                values.update({f"{model}.cv_{name}": value for name, value in scores.items()
                               if isinstance(value, (int, float))})
        stage_run = _log_summary_run(client, experiment_id, tracking, parent, f"mix-{stage}", params={"stage": stage},
                                     values=values, artifacts=[runs_path, fit_path])
        children = {}
        for run_id, record in read_json(runs_path).items():
            run_dir = layout.mix_run_dir(stage, run_id)
            if record.get("stage", stage) == stage and (run_dir / "result.json").exists():  # a reused proxy: once
                children[run_id] = _log_training_run(client, experiment_id, tracking, {**record, "run_id": run_id},
                                                      run_dir, stage_run, known.get(run_id, []))
        logged[stage] = {"run": stage_run, "runs": children}
    return logged


def _mark_plan_membership(client, known: dict[str, list], logged: dict[str, str]) -> None:
    """Tag each training run found before the sync (`known`: isoflop run id -> its MLflow runs) `isoflop.in_plan`
    true/false: runs of an earlier config stay browsable as history but filter out with
    `tags.isoflop.in_plan = 'true'`. `logged`: isoflop run id -> the MLflow run this sync kept for it; the
    other MLflow runs of those ids were replaced (deleted) by it. Runs the sync created carry `true` already."""
    for run in (run for runs in known.values() for run in runs):
        isoflop_id = run.data.tags.get(RUN_TAG)
        if isoflop_id in logged and logged[isoflop_id] != run.info.run_id:
            continue
        wanted = "true" if isoflop_id in logged else "false"
        if run.data.tags.get("isoflop.in_plan") != wanted:
            client.set_tag(run.info.run_id, "isoflop.in_plan", wanted)


def _finish_study_run(client, experiment_id: str, parent: str, plan: dict, config: dict, table) -> None:
    """The parent run: the resolved config as params (once), a description, and its end at the last child's
    end. Copies of it made by concurrent live logging are deleted (their children moved here already)."""
    copies = _find_runs(client, experiment_id, config["study"], {KIND_TAG: "study", PLAN_TAG: plan["plan_id"]})
    for copy in copies[1:]:
        client.delete_run(copy.info.run_id)
    if not client.get_run(parent).data.params:
        _log_batches(client, parent, _flatten("", config, {}), [], {})
    budgets = ", ".join(_short(b) for b in sorted(table["budget"].unique()))
    ok = int((table["status"] == "ok").sum())
    client.set_tag(parent, NOTE_TAG, (
        f"{len(table)} training runs ({ok} finished) over budgets {budgets} FLOPs, sizes N = "
        f"{_size(table['N'].min())} to {_size(table['N'].max())}; plan `{plan['plan_id']}`. Children: the "
        "training runs (named by N and budget), `curation` and `fit` (laws with 95% intervals, the report)."))
    children = _find_runs(client, experiment_id, config["study"], {PARENT_TAG: parent})
    ended = max((child.info.end_time or 0 for child in children), default=0) or int(time.time() * 1000)
    client.set_terminated(parent, status="FINISHED", end_time=ended)


def sync_study(tracking: Tracking, layout: StudyLayout, plan_path, out_path, config: dict, *,
               rebuild: bool = False, threads: int = SYNC_THREADS) -> dict:
    """Make the store match the files: the study's parent run (with the resolved `config`) and under it every
    run of the runs table and every landed forecast run (logging any that are missing or stale), the fit run with the laws, report and
    figures as artifacts, and the curation run. Reads the plan, the runs' folders, the runs table, laws.json,
    the report and figures, and the curated folder; writes `out_path` mapping ids. One sync of a study at a
    time (the sync lock); `rebuild` first moves a SQLite store aside (see `_set_aside`); `threads`: training
    runs logged to a server at once (see `_log_training_runs`).

    The store is read with one tag-filtered, paged search of the study's training runs, not a search per run,
    so a sync of a large grid costs pages of `PAGE_SIZE` runs (MLflow's search_runs slows at tens of
    thousands of runs: bench/bench_track.py)."""
    import pandas as pd

    plan = read_json(plan_path)
    table = pd.read_parquet(layout.runs_table)
    with _locked(layout.sync_lock):
        if rebuild:
            _set_aside(tracking)
        client, experiment_id = _open(tracking)
        parent = _study_run(client, experiment_id, tracking)
        known: dict[str, list] = {}
        for logged_run in _find_runs(client, experiment_id, tracking.study, {KIND_TAG: "train"}):
            known.setdefault(logged_run.data.tags.get(RUN_TAG), []).append(logged_run)
        mapping = _log_training_runs(client, experiment_id, tracking, layout, _trained_runs(table, plan, layout),
                                     plan, parent, known, threads)
        summary = _sync_study_outputs(client, experiment_id, tracking, layout, parent, plan, config, table,
                                      known, mapping)
    write_json(out_path, summary)
    log.info("MLflow holds the study run %s with %d training runs, the fit run %s and the curation run %s",
             parent, len(mapping), summary["fit"], summary["curation"])
    return summary


def _trained_runs(table, plan: dict, layout: StudyLayout) -> list[str]:
    """The runs the view shows: every run of the runs table, then each forecast run that has landed (left out of
    the table so the fit never sees it, but a trained run all the same, and one a live job logs as it ends)."""
    landed = [run_id for run_id, run in sorted(plan["runs"].items())
              if run.get("forecast") and layout.run_result(run_id).exists()]
    return [*table["run_id"], *landed]


def _log_training_runs(client, experiment_id: str, tracking: Tracking, layout: StudyLayout, run_ids: list[str],
                       plan: dict, parent: str, known: dict[str, list], threads: int) -> dict[str, str]:
    """`_log_training_run` for each of `run_ids`: isoflop run id -> MLflow run id, in the order of `run_ids`.
    A server's runs are logged `threads` at a time: each costs a few requests that mostly wait on the
    server, and each run's own requests stay in order (its result tag last), so the store holds the same
    whatever the threads' timing. A SQLite store takes one writer at a time, so its runs are logged in turn.
    The first failure cancels the runs not yet started and is raised."""
    def log(run_id: str) -> str:
        return _log_training_run(client, experiment_id, tracking, plan["runs"][run_id], layout.run_dir(run_id),
                                 parent, known.get(run_id, []))

    if threads == 1 or _sqlite_path(tracking.uri):
        return {run_id: log(run_id) for run_id in run_ids}
    pool = ThreadPoolExecutor(threads, thread_name_prefix="isoflop-sync")
    try:
        futures = {run_id: pool.submit(log, run_id) for run_id in run_ids}
        return {run_id: future.result() for run_id, future in futures.items()}
    finally:
        pool.shutdown(cancel_futures=True)


def _set_aside(tracking: Tracking) -> None:
    """Move a SQLite store to `<file>.corrupt-<UTC time>` (kept for a post-mortem), so the sync recreates it.
    MLflow keeps one engine per store URI for the life of a process, so this is for a process that has not
    opened the store yet (`isoflop track-sync --rebuild`)."""
    db = _sqlite_path(tracking.uri)
    if db is None:
        from isoflop.errors import UserError

        raise UserError(f"--rebuild replaces a SQLite store; {tracking.uri} is not one (a plain "
                        "`isoflop track-sync` repairs a server's store)")
    if db.exists():
        aside = db.with_name(f"{db.name}.corrupt-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
        db.rename(aside)
        log.warning("moved the MLflow store %s aside to %s; rebuilding it from the run files", db, aside)


def _sync_study_outputs(client, experiment_id: str, tracking: Tracking, layout: StudyLayout, parent: str,
                        plan: dict, config: dict, table, known: dict[str, list], mapping: dict) -> dict:
    """The sync's part after the training runs: plan membership, the fit and curation runs, the parent run."""
    mixture_search = _log_mixture_search(client, experiment_id, tracking, layout, parent, known)
    mixture_runs = {run_id: mlflow_id for stage in mixture_search.values()
                    for run_id, mlflow_id in stage["runs"].items()}
    _mark_plan_membership(client, known, {**mapping, **mixture_runs})
    fit_id = _log_fit_run(client, experiment_id, tracking, layout, parent, config)
    curation_id = _log_curation_run(client, experiment_id, tracking, parent,
                                    layout.curated(plan["ids"]["curated"]), layout.figures)
    _finish_study_run(client, experiment_id, parent, plan, config, table)
    return {"tracking_uri": tracking.uri, "experiment_id": experiment_id, "study": parent, "runs": mapping,
            "fit": fit_id, "curation": curation_id, **({"mixture_search": mixture_search} if mixture_search else {})}


def sync_study_or_defer(tracking: Tracking, layout: StudyLayout, plan_path, out_path, config: dict) -> dict:
    """`sync_study` for the workflow's last job, which never fails because of the store: where the sync fails
    it writes `out_path` marked pending (so the next workflow run syncs again: track.smk) and prints one line
    to the console (the job's log gets the traceback where the store was not to blame)."""
    try:
        return sync_study(tracking, layout, plan_path, out_path, config)
    except Exception as err:  # noqa: BLE001 - every result is already written; tracking is a view of them
        reason = _one_line(err)
        log.warning("MLflow not updated: %s", reason, exc_info=not isinstance(err, TrackingUnavailable))
        summary = {"tracking_uri": tracking.uri, "pending": reason}
        write_json(out_path, summary)
        fix = ("`isoflop track-sync --rebuild` rebuilds it" if isinstance(err, StoreCorrupt) else
               "`isoflop track-sync` or the next workflow run fills the store")
        print(f"MLflow not updated ({reason}); every result is in {layout.root}: {fix}", file=sys.__stderr__,
              flush=True)
        return summary


def sync_pending(tracked_path) -> bool:
    """Whether the last sync of the study left its output marked pending (its store was unreachable)."""
    path = Path(tracked_path)
    return path.exists() and "pending" in read_json(path)


SYNC_EXAMPLES = """examples:
  isoflop track-sync --config config.yaml              log what the store lacks (idempotent: nothing twice)
  isoflop track-sync --config config.yaml --rebuild    move a corrupt mlflow.db aside and rebuild it
  MLFLOW_TRACKING_URI=http://127.0.0.1:5001 isoflop track-sync --config config.yaml   to a server
"""
SERVER_EXAMPLES = """examples:
  isoflop tracking-server start --dir /shared/mlflow   prints the URI to set as tracking.uri
  isoflop tracking-server stop --dir /shared/mlflow    stops it and deletes its database
"""


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
        epilog=SYNC_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sync.add_argument("--config", default="config.yaml", help="study config (default: config.yaml)")
    sync.add_argument("--rebuild", action="store_true",
                      help="move a corrupt SQLite store aside and rebuild it from the run files")
    sync.set_defaults(func=_sync_command)
    server = subparsers.add_parser(
        "tracking-server", help="start or stop an MLflow server with a PostgreSQL database (bound to 127.0.0.1)",
        description="Start (or stop) a throwaway PostgreSQL cluster and `mlflow server` on it, detached; "
                    "artifacts, log and state live in --dir.",
        epilog=SERVER_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    server.add_argument("action", choices=["start", "stop"])
    server.add_argument("--dir", required=True, help="folder for the server's artifacts, log and state")
    server.add_argument("--port", type=int, default=None, help="port on 127.0.0.1 (default: a free one)")
    server.add_argument("--workers", type=int, default=2, help="server worker processes (default: 2)")
    server.set_defaults(func=_server_command)


def _server_command(args) -> int:
    from isoflop.tracking_server import command

    return command(args)


def ui_command(tracking: Tracking, port: int) -> list[str]:
    """`mlflow ui` on the study's store with one worker (a view for one researcher), its artifacts served from
    the study's own folder wherever that folder now is. Run it with `UI_ENVIRONMENT`."""
    command = [str(Path(sys.executable).parent / "mlflow"), "ui", "--backend-store-uri", tracking.uri,
               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    if tracking.artifacts:
        command += ["--artifacts-destination", tracking.artifacts]
    return command


def _ui_command(args) -> int:
    from isoflop.config import load_config
    from isoflop.errors import UserError

    config = load_config(args.config)
    tracking = Tracking.of(config)
    uri = tracking.uri
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).exists():
        raise UserError(f"no MLflow store yet at {uri}: run the study first (make study)")
    if uri.startswith("http"):
        print(f"the study tracks to a server: open {uri}")
        return 0
    command = ui_command(tracking, args.port)
    print(f"MLflow UI for study '{config['study']}' at http://127.0.0.1:{args.port}", flush=True)
    os.execve(command[0], command, {**os.environ, **UI_ENVIRONMENT})
    return 0


def _sync_command(args) -> int:
    from isoflop.config import load_config
    from isoflop.errors import UserError

    config = load_config(args.config)
    tracking, layout = Tracking.of(config), StudyLayout.of(config)
    if not layout.plan.exists():
        raise UserError(f"no plan at {layout.plan}: run the study first (make study)")
    try:
        summary = sync_study(tracking, layout, layout.plan, layout.tracked, config, rebuild=args.rebuild)
    except TrackingUnavailable as err:
        raise UserError(str(err)) from None
    except Exception as err:
        from mlflow.exceptions import MlflowException

        if not isinstance(err, (MlflowException, OSError)):
            raise
        raise UserError(f"MLflow store {tracking.uri} failed during the sync ({_one_line(err)}); every run is in "
                        f"{layout.root}: run `isoflop track-sync` again") from None
    print(f"{len(summary['runs'])} training runs and the fit are in {summary['tracking_uri']}")
    return 0
