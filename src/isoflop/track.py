"""MLflow as a view of the study's files: idempotent by isoflop run id, never the source of truth.

Every training run's MLflow run carries the tag `isoflop.run_id` and `isoflop.result_sha256` (a hash of its
result.json). Logging a run that is already there with the same result does nothing; a run whose result
changed (it was retrained) replaces the old MLflow run. So re-running the workflow never duplicates runs,
and `sync_study` can rebuild a deleted store from `results/` alone.

The view is laid out for a researcher: one parent run per study plan (tag `isoflop.plan_id`) holding the
training runs, the curation and the fit as children; run names state N and the budget; start and end times
and every metric point's timestamp are when the training loop ran (result.json's `started_at`/`ended_at`,
curve.parquet's `seconds`), not when the view was written.

Tracking settings are not rerun triggers: pointing a study at another store changes no result. So jobs get
them as a `Tracking` (built from the config's `tracking` section and the study's name), never as params.
"""

from __future__ import annotations

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
PLAN_TAG = "isoflop.plan_id"
PARENT_TAG = "mlflow.parentRunId"
MIXTURE_TAG = "isoflop.mixture_id"
NOTE_TAG = "mlflow.note.content"  # what the UI shows as a run's or an experiment's description
# MLflow 3 opens an experiment without this tag on its GenAI "Traces" page; this value opens the runs table
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
# The default store records artifact locations under this scheme, which whoever serves the store maps to a
# folder (`--artifacts-destination`): a copied results/ folder then serves its own copy of the artifacts
PROXIED = "mlflow-artifacts:/"
BATCH_LIMIT = 100  # MLflow's log_batch takes at most 100 params / tags and 1000 metrics per call
METRIC_BATCH = 1000


@dataclass(frozen=True)
class Tracking:
    """Where a study's MLflow view lives: the store's URI, the experiment, the study's plan.json (where a run
    logged live finds its parent) and, for the default local store, the folder its artifacts live in."""

    uri: str
    experiment: str
    study: str
    plan: str
    artifacts: str | None = None

    @classmethod
    def of(cls, config: dict) -> Tracking:
        """The config's `tracking.uri`, or a SQLite store inside the study's results."""
        layout = StudyLayout.of(config)
        uri, artifacts = config["tracking"]["uri"], None
        if not uri:
            uri = f"sqlite:///{layout.mlflow_db.resolve()}"
            artifacts = str(layout.mlflow_artifacts.resolve())
        return cls(uri, config["tracking"]["experiment"] or config["study"], config["study"],
                   str(layout.plan.resolve()), artifacts)


def _client(tracking: Tracking):
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking.uri)


def _experiment_id(client, tracking: Tracking) -> str:
    """The study's experiment (created, or restored if deleted), tagged as model development and described."""
    experiment = client.get_experiment_by_name(tracking.experiment)
    if experiment is None:
        location = None  # a tracking server chooses where its artifacts go
        if tracking.artifacts:
            location = PROXIED + re.sub(r"[^A-Za-z0-9_.-]", "_", tracking.experiment)
        experiment = client.get_experiment(client.create_experiment(tracking.experiment, location))
    elif experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    wanted = {**EXPERIMENT_KIND, NOTE_TAG: (
        f"Scaling-law study `{tracking.study}` (isoflop): one parent run per plan of the study, with its training "
        "runs, the curation and the fit as children. A view of the study's files under results/: "
        "`isoflop track-sync` rebuilds it.")}
    for key, value in wanted.items():
        if experiment.tags.get(key) != value:
            client.set_experiment_tag(experiment.experiment_id, key, value)
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


def create_store(tracking: Tracking, marker_path) -> None:
    """Create the store's schema and the study's experiment once, before any training job writes to it."""
    Path(marker_path).parent.mkdir(parents=True, exist_ok=True)
    client = _client(tracking)
    experiment_id = _retrying(lambda: _experiment_id(client, tracking))
    write_json(marker_path, {"tracking_uri": tracking.uri, "experiment": tracking.experiment,
                             "experiment_id": experiment_id})
    log.info("MLflow store ready: %s (experiment %s)", tracking.uri, experiment_id)


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


def _find_runs(client, experiment_id: str, tags: dict[str, str]):
    """Every active run of the experiment with all of `tags` (all pages), oldest first."""
    where = " and ".join(f"tags.`{key}` = '{value}'" for key, value in tags.items())
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string=where, max_results=1000, page_token=token,
                                  order_by=["attributes.start_time ASC"])
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


def _log_artifact(client, tracking: Tracking, run, path, artifact_path: str | None = None) -> None:
    """Log a file as an artifact of `run`. The default store has no server in between, so files for a proxied
    location are written straight into the folder that `isoflop mlflow-ui` serves it from."""
    uri = run.info.artifact_uri
    if tracking.artifacts and uri.startswith(PROXIED):
        from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

        repo = LocalArtifactRepository(str(Path(tracking.artifacts) / uri[len(PROXIED):]))
        repo.log_artifact(str(path), artifact_path)
    else:
        client.log_artifact(run.info.run_id, str(path), artifact_path)


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
        if "seconds" not in curve:
            curve = curve.assign(seconds=math.nan)
        train = curve[curve["kind"] == "train"].assign(flops=lambda rows: rows["tokens"] * run["C"] / run["D"])
        for column in ("train_loss", "lr", "tokens", "flops"):
            series = train[["step", "seconds", column]].dropna(subset=[column])
            metrics.extend(Metric(column, float(v), stamp(t), int(s))
                           for s, t, v in zip(series["step"], series["seconds"], series[column]))
        # the loss against tokens as a chart of its own: MLflow's x-axis is a step, and a step may be the token
        # count (the UI's metric page then draws loss against tokens with no axis configuration)
        for key, rows, column in (("train_loss_vs_tokens", train, "train_loss"),
                                  ("val_loss_vs_tokens", curve[(curve["kind"] == "eval") & (curve["domain"] == "*")],
                                   "val_loss")):
            series = rows[["tokens", "seconds", column]].dropna(subset=[column])
            metrics.extend(Metric(key, float(v), stamp(t), int(n))
                           for n, t, v in zip(series["tokens"], series["seconds"], series[column]))
        evals = curve[curve["kind"] == "eval"]
        for domain, rows in evals.groupby("domain"):
            suffix = "" if domain == "*" else f".{domain}"
            for column in ("val_loss", "val_bpb"):
                series = rows[["step", "seconds", column]].dropna(subset=[column])
                metrics.extend(Metric(column + suffix, float(v), stamp(t), int(s))
                               for s, t, v in zip(series["step"], series["seconds"], series[column]))
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
    existing = _find_runs(client, experiment_id, {KIND_TAG: "study", PLAN_TAG: plan_id})
    if existing:
        return existing[0].info.run_id
    tags = {KIND_TAG: "study", PLAN_TAG: plan_id, "isoflop.study": tracking.study, **_source_tags()}
    started = int(1000 * plan_path.stat().st_mtime)  # the study started when its plan was written
    return client.create_run(experiment_id, start_time=started, tags=tags,
                             run_name=f"{tracking.study}-plan-{plan_id[:6]}").info.run_id


def log_training_run(tracking: Tracking, run: dict, run_dir, parent: str | None = None) -> str:
    """Log one finished training run from its files, as a child of `parent` (by default the study's parent
    run); returns the MLflow run id. Idempotent (see module doc)."""
    run_dir = Path(run_dir)
    result_bytes = (run_dir / "result.json").read_bytes()
    result = json.loads(result_bytes)
    result_sha = hashlib.sha256(result_bytes).hexdigest()
    client = _client(tracking)
    experiment_id = _retrying(lambda: _experiment_id(client, tracking))
    if parent is None:
        parent = _retrying(lambda: _study_run(client, experiment_id, tracking))
    existing = _find_runs(client, experiment_id, {RUN_TAG: run["run_id"]})
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
        RESULT_TAG: result_sha,
        KIND_TAG: "train",
        "isoflop.study": tracking.study,
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
    created = _retrying(lambda: client.create_run(experiment_id, start_time=int(1000 * started),
                                                  run_name=_run_name(run), tags={RUN_TAG: run["run_id"]}))
    mlflow_id = created.info.run_id
    metrics = _metrics(run, result, curve, started, ended)
    _retrying(lambda: _log_batches(client, mlflow_id, params, metrics, tags))
    _retrying(lambda: _log_artifact(client, tracking, created, run_dir / "result.json"))
    if result.get("tokens_fingerprint"):
        _retrying(lambda: client.log_inputs(mlflow_id, datasets=[_corpus_input(result)]))
    status = "FINISHED" if result.get("status") == "ok" else "FAILED"
    _retrying(lambda: client.set_terminated(mlflow_id, status=status, end_time=int(1000 * ended)))
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
    """`log_training_run` that never fails the training job: files are the truth, the sync repairs later."""
    try:
        return log_training_run(tracking, run, run_dir)
    except Exception as err:  # noqa: BLE001 - tracking must never fail a finished run
        log.warning("MLflow logging of run %s failed (the study's final sync retries): %s", run["run_id"], err)
        return None


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
    for old in _find_runs(client, experiment_id, {KIND_TAG: kind}):
        if old.data.tags.get(RESULT_TAG) == source_sha:
            if old.data.tags.get(PARENT_TAG) != parent:
                client.set_tag(old.info.run_id, PARENT_TAG, parent)
            return old.info.run_id
        client.delete_run(old.info.run_id)
    # it ran from its first file's writing to its last's (the fit's laws.json, then the report's files)
    written = [int(1000 * path.stat().st_mtime) for path in artifacts] or [int(time.time() * 1000)]
    created = client.create_run(experiment_id, run_name=kind, tags={KIND_TAG: kind}, start_time=min(written))
    metrics = [Metric(key, float(value), max(written), 0) for key, value in values.items()]
    tags = {KIND_TAG: kind, RESULT_TAG: source_sha, "isoflop.study": tracking.study, PARENT_TAG: parent,
            **_source_tags(), **({NOTE_TAG: description} if description else {})}
    _log_batches(client, created.info.run_id, params, metrics, tags)
    for path in artifacts:
        _log_artifact(client, tracking, created, path, "figures" if path.suffix == ".png" else None)
    for name, value in (documents or {}).items():
        _log_dict(client, tracking, created, value, name)
    client.set_terminated(created.info.run_id, status="FINISHED", end_time=max(written))
    return created.info.run_id


def report_summary(report: str) -> str:
    """The report's first paragraph and its warnings section, as markdown (the fit run's description)."""
    blocks = [block.strip() for block in report.split("\n\n") if block.strip()]
    first = next((block for block in blocks if not block.startswith("#")), "")
    warnings = []
    if "## Warnings" in blocks:
        for block in blocks[blocks.index("## Warnings") + 1 :]:
            if block.startswith("#"):
                break
            warnings.append(block)
    return "\n\n".join([first, *(["**Warnings**", *warnings] if warnings else [])])


def _log_fit_run(client, experiment_id: str, tracking: Tracking, layout: StudyLayout, parent: str,
                 config: dict) -> str:
    """The fit: each law's estimates and their 95% interval bounds as metrics, the report's summary as the
    description, and laws.json, runs.parquet, report.md, the figures, the resolved config and plan.json."""
    laws = json.loads(layout.laws.read_bytes())
    values = {}
    for law in ("chinchilla", "isoflop"):
        fitted = laws.get(law) or {}
        for key, value in (fitted.get("params") or {}).items():
            if isinstance(value, (int, float)):
                values[f"{law}.{key}"] = value
                for bound, name in zip((fitted.get("ci95") or {}).get(key) or (), ("lo95", "hi95")):
                    if isinstance(bound, (int, float)):
                        values[f"{law}.{key}.{name}"] = bound
    params = {**laws.get("settings", {}), "flops_convention": laws.get("flops_convention")}
    figures = sorted(p for p in layout.figures.glob("*.png") if not p.name.startswith("curation_"))
    description = report_summary(layout.report.read_text()) if layout.report.exists() else ""
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


def _log_mixture_search(client, experiment_id: str, tracking: Tracking, layout: StudyLayout, parent: str) -> dict:
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
                children[run_id] = log_training_run(tracking, {**record, "run_id": run_id}, run_dir, stage_run)
        logged[stage] = {"run": stage_run, "runs": children}
    return logged


def _mark_plan_membership(client, experiment_id: str, current: set[str]) -> None:
    """Tag each training run `isoflop.in_plan` true/false: runs of an earlier config stay browsable as history
    but filter out with `tags.isoflop.in_plan = 'true'`."""
    for run in _find_runs(client, experiment_id, {KIND_TAG: "train"}):
        wanted = "true" if run.data.tags.get(RUN_TAG) in current else "false"
        if run.data.tags.get("isoflop.in_plan") != wanted:
            client.set_tag(run.info.run_id, "isoflop.in_plan", wanted)


def _finish_study_run(client, experiment_id: str, parent: str, plan: dict, config: dict, table) -> None:
    """The parent run: the resolved config as params (once), a description, and its end at the last child's
    end. Copies of it made by concurrent live logging are deleted (their children moved here already)."""
    for copy in _find_runs(client, experiment_id, {KIND_TAG: "study", PLAN_TAG: plan["plan_id"]})[1:]:
        client.delete_run(copy.info.run_id)
    if not client.get_run(parent).data.params:
        _log_batches(client, parent, _flatten("", config, {}), [], {})
    budgets = ", ".join(_short(b) for b in sorted(table["budget"].unique()))
    ok = int((table["status"] == "ok").sum())
    client.set_tag(parent, NOTE_TAG, (
        f"{len(table)} training runs ({ok} finished) over budgets {budgets} FLOPs, sizes N = "
        f"{_size(table['N'].min())} to {_size(table['N'].max())}; plan `{plan['plan_id']}`. Children: the "
        "training runs (named by N and budget), `curation` and `fit` (laws with 95% intervals, the report)."))
    children = _find_runs(client, experiment_id, {PARENT_TAG: parent})
    ended = max((child.info.end_time or 0 for child in children), default=0) or int(time.time() * 1000)
    client.set_terminated(parent, status="FINISHED", end_time=ended)


def sync_study(tracking: Tracking, layout: StudyLayout, plan_path, out_path, config: dict) -> dict:
    """Make the store match the files: the study's parent run (with the resolved `config`) and under it every
    run of the runs table (logging any that are missing or stale), the fit run with the laws, report and
    figures as artifacts, and the curation run. Reads the plan, the runs' folders, the runs table, laws.json,
    the report and figures, and the curated folder; writes `out_path` mapping ids."""
    import pandas as pd

    plan = read_json(plan_path)
    table = pd.read_parquet(layout.runs_table)
    client = _client(tracking)
    experiment_id = _experiment_id(client, tracking)
    parent = _study_run(client, experiment_id, tracking)
    mapping = {}
    for run_id in table["run_id"]:
        mapping[run_id] = log_training_run(tracking, plan["runs"][run_id], layout.run_dir(run_id), parent)
    mixture_search = _log_mixture_search(client, experiment_id, tracking, layout, parent)
    mixture_runs = {run_id for stage in mixture_search.values() for run_id in stage["runs"]}
    _mark_plan_membership(client, experiment_id, set(mapping) | mixture_runs)
    fit_id = _log_fit_run(client, experiment_id, tracking, layout, parent, config)
    curation_id = _log_curation_run(client, experiment_id, tracking, parent,
                                    layout.curated(plan["ids"]["curated"]), layout.figures)
    _finish_study_run(client, experiment_id, parent, plan, config, table)
    summary = {"tracking_uri": tracking.uri, "experiment_id": experiment_id, "study": parent, "runs": mapping,
               "fit": fit_id, "curation": curation_id, **({"mixture_search": mixture_search} if mixture_search else {})}
    write_json(out_path, summary)
    log.info("MLflow holds the study run %s with %d training runs, the fit run %s and the curation run %s",
             parent, len(mapping), fit_id, curation_id)
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


# MLflow 3's server also starts a job runner with a dozen consumer processes for GenAI jobs (scorers,
# prompt optimisation) that a study's runs never use; without it the UI is two processes and starts faster
UI_ENVIRONMENT = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


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
    create_store(tracking, layout.store_marker)
    summary = sync_study(tracking, layout, layout.plan, layout.tracked, config)
    print(f"{len(summary['runs'])} training runs and the fit are in {summary['tracking_uri']}")
    return 0
