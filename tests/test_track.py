"""MLflow as a view, against a real `mlflow server` started by the test on 127.0.0.1."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from isoflop.config import validate_config
from isoflop.layout import StudyLayout
from isoflop.track import UI_ENVIRONMENT, Tracking, log_training_run, log_training_run_safely, sync_study, ui_command


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{root / 'store.db'}", "--artifacts-destination", str(root / "art"),
         "--workers", "1"],
        env={**os.environ, **UI_ENVIRONMENT}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    yield _wait_for(server, f"http://127.0.0.1:{port}")
    server.terminate()
    server.wait(timeout=30)


def _wait_for(server: subprocess.Popen, uri: str) -> str:
    """`uri` once the MLflow server process `server` answers there."""
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(f"{uri}/health", timeout=2)
            return uri
        except OSError:
            assert server.poll() is None, "mlflow server exited"
            assert time.time() < deadline, "mlflow server did not start within 120 s"
            time.sleep(0.5)


def _run(run_id="abc123def456"):
    spec = {"model": {"d_model": 16}, "mixture": {"code": 1.0}, "train": {"lr": 0.02, "tokens": 4096}}
    return {"run_id": run_id, "budget": 1e9, "N": 100, "D": 4096, "C": 2.5e9, "d_model": 16, "n_layers": 1,
            "n_heads": 1, "params": {"total": 120, "nonembed": 20, "nonembed_head": 100},
            "flops_convention": "nonembed_head_attention", "spec": spec}


def _write_run(run_dir: Path, val_loss: float):
    run_dir.mkdir(parents=True, exist_ok=True)
    result = {"status": "ok", "val_loss": val_loss, "val_loss_by_domain": {"code": val_loss}, "steps": 2,
              "tokens_fingerprint": "fingerprint",
              "torch_version": "2.13.0", "threads": 1, "device": "cpu"}
    (run_dir / "result.json").write_text(json.dumps(result))
    pd.DataFrame({"kind": ["train", "train", "eval"], "step": [1, 2, 2], "tokens": [2048, 4096, 4096],
                  "lr": [0.01, 0.02, 0.02], "train_loss": [5.0, 4.5, None], "domain": [None, None, "*"],
                  "val_loss": [None, None, val_loss], "val_bpb": [None, None, 2.0]}).to_parquet(run_dir / "curve.parquet")


def _config(uri: str, tmp_path: Path, experiment: str) -> Tracking:
    return Tracking.of(validate_config({"results_dir": str(tmp_path),
                                        "tracking": {"uri": uri, "experiment": experiment}}))


def _active_runs(uri: str, experiment: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    return client.search_runs([client.get_experiment_by_name(experiment).experiment_id])


def test_logging_is_idempotent_and_a_retrained_run_replaces_its_view(mlflow_server, tmp_path):
    config = _config(mlflow_server, tmp_path, "idempotent")
    run_dir = tmp_path / "run"
    _write_run(run_dir, 3.25)
    first = log_training_run(config, _run(), run_dir)
    assert log_training_run(config, _run(), run_dir) == first
    [logged] = _active_runs(mlflow_server, "idempotent")
    assert logged.data.metrics["final.val_loss"] == 3.25
    assert logged.data.params["train.lr"] == "0.02" and logged.data.params["N_nonembed_head"] == "100"
    assert logged.data.tags["isoflop.run_id"] == "abc123def456"

    from mlflow.tracking import MlflowClient

    history = MlflowClient(mlflow_server).get_metric_history(first, "train_loss")
    assert [(m.step, m.value) for m in history] == [(1, 5.0), (2, 4.5)]

    _write_run(run_dir, 3.5)  # retrained with another result
    second = log_training_run(config, _run(), run_dir)
    assert second != first
    [logged] = _active_runs(mlflow_server, "idempotent")
    assert logged.info.run_id == second and logged.data.metrics["final.val_loss"] == 3.5


def test_tracking_failure_never_fails_the_run(tmp_path, caplog):
    dead = f"http://127.0.0.1:{_free_port()}"
    config = _config(dead, tmp_path, "unreachable")
    run_dir = tmp_path / "run"
    _write_run(run_dir, 3.0)
    started = time.perf_counter()
    assert log_training_run_safely(config, _run(), run_dir) is None
    assert time.perf_counter() - started < 5  # the /health probe is refused at once: no HTTP retries
    [line] = [r.getMessage() for r in caplog.records if "abc123def456" in r.getMessage()]
    assert line == (f"MLflow logging of run abc123def456 skipped: MLflow server {dead} does not answer "
                    "([Errno 111] Connection refused) (the study's sync fills it in)")
    assert not caplog.records[-1].exc_info  # one line, no traceback: the store was to blame


def test_a_diverged_run_is_tracked_as_failed(mlflow_server, tmp_path):
    config = _config(mlflow_server, tmp_path, "diverged")
    run_dir = tmp_path / "run"
    _write_run(run_dir, 3.0)
    result = json.loads((run_dir / "result.json").read_text())
    result.update(status="diverged", val_loss=None, val_loss_by_domain={"code": None}, diverged_step=2)
    (run_dir / "result.json").write_text(json.dumps(result))
    log_training_run(config, _run("fedcba987654"), run_dir)
    [logged] = _active_runs(mlflow_server, "diverged")
    assert logged.info.status == "FAILED" and logged.data.tags["isoflop.status"] == "diverged"
    assert "final.val_loss" not in logged.data.metrics


# ---- the researcher's view: a local store laid out as a study's results/ -----------------------------------

STARTED = 1_700_000_000.0  # result.json's started_at: the training loop's own clock, not the logging's


def _study(tmp_path: Path) -> tuple[dict, StudyLayout]:
    """The default local store of a study `view` under tmp_path, with a plan holding two timed runs."""
    config = validate_config({"study": "view", "results_dir": str(tmp_path / "results")})
    layout = StudyLayout.of(config)
    runs = {"abc123def456": _run("abc123def456"),
            "fedcba987654": {**_run("fedcba987654"), "N": 52_345, "budget": 9.5e11, "lr_multiplier": 2.0}}
    for run_id in runs:
        _write_timed_run(layout.run_dir(run_id), 3.25)
    layout.root.mkdir(parents=True, exist_ok=True)
    layout.plan.write_text(json.dumps({"plan_id": "plan00000001", "ids": {"curated": "cur000000001"}, "runs": runs}))
    return config, layout


def _write_timed_run(run_dir: Path, val_loss: float, wall: float = 12.8):
    """A run as the training loop writes it: started_at/ended_at, and when each step and evaluation ended."""
    _write_run(run_dir, val_loss)
    result = json.loads((run_dir / "result.json").read_text())
    result.update(started_at=STARTED, ended_at=STARTED + wall, wall_seconds=wall, train_seconds=wall - 1)
    (run_dir / "result.json").write_text(json.dumps(result))
    curve = pd.read_parquet(run_dir / "curve.parquet").assign(seconds=[5.0, 10.0, 11.5])
    curve.to_parquet(run_dir / "curve.parquet")


def _client_of(config: dict):
    from mlflow.tracking import MlflowClient

    tracking = Tracking.of(config)
    client = MlflowClient(tracking.uri)
    return client, client.get_experiment_by_name(tracking.experiment)


def test_a_training_run_shows_numbers_as_metrics_at_the_times_it_ran_under_its_study(tmp_path):
    config, layout = _study(tmp_path)
    tracking = Tracking.of(config)
    first = log_training_run(tracking, _run(), layout.run_dir("abc123def456"))
    assert log_training_run(tracking, _run(), layout.run_dir("abc123def456")) == first  # idempotent
    client, experiment = _client_of(config)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert "study `view`" in experiment.tags["mlflow.note.content"]
    [study, run] = sorted(client.search_runs([experiment.experiment_id]), key=lambda r: r.data.tags["isoflop.kind"])
    assert study.data.tags["isoflop.kind"] == "study" and study.data.tags["isoflop.plan_id"] == "plan00000001"
    assert run.info.run_id == first and run.data.tags["mlflow.parentRunId"] == study.info.run_id
    assert run.info.run_name == "N100-C1e9"

    # N, D, C and the budget are numbers, single values at step 0 like every final result
    single = {"N": 100, "D": 4096, "C": 2.5e9, "budget": 1e9, "N_nonembed": 20, "final.val_loss": 3.25}
    for key, value in single.items():
        [point] = client.get_metric_history(first, key)
        assert (point.value, point.step) == (value, 0), key
    # the run lasted what the training loop measured, and each point is stamped when its step ended
    assert (run.info.end_time - run.info.start_time) / 1000 == pytest.approx(12.8, rel=0.1)
    assert run.info.start_time == 1000 * STARTED
    loss = client.get_metric_history(first, "train_loss")
    assert [m.timestamp for m in loss] == [1000 * (STARTED + 5), 1000 * (STARTED + 10)]
    [val] = client.get_metric_history(first, "val_loss")
    assert (val.step, val.timestamp) == (2, 1000 * (STARTED + 11.5))
    # tokens and FLOPs so far per step: the x-axes that put loss against compute
    assert [(m.step, m.value) for m in client.get_metric_history(first, "tokens")] == [(1, 2048), (2, 4096)]
    # the loss with the token count as its step: the metric page draws loss against tokens
    assert [(m.step, m.value) for m in client.get_metric_history(first, "train_loss_vs_tokens")] == [(2048, 5.0), (4096, 4.5)]
    assert [(m.step, m.value) for m in client.get_metric_history(first, "val_loss_vs_tokens")] == [(4096, 3.25)]
    [data] = client.get_run(first).inputs.dataset_inputs  # the corpus the run trained on
    assert data.dataset.name == "tokens-fingerprint" and data.dataset.digest == "fingerprint"
    assert {tag.key: tag.value for tag in data.tags} == {"mlflow.data.context": "training"}
    assert [m.value for m in client.get_metric_history(first, "flops")] == [2048 * 2.5e9 / 4096, 2.5e9]
    commit = run.data.tags["mlflow.source.git.commit"]
    assert len(commit) == 40 and int(commit, 16) >= 0
    assert run.data.tags["mlflow.source.type"] == "LOCAL" and run.data.tags["mlflow.source.name"].endswith("Snakefile")


def test_run_names_state_n_and_the_budget_to_three_digits():
    from isoflop.track import _run_name

    assert _run_name({"N": 52_345, "budget": 9.5e11}) == "N52.3k-C9.5e11"
    assert _run_name({"N": 7_920, "budget": 4e9, "lr_multiplier": 0.5, "replicate": 1}) == "N7.92k-C4e9-lrx0.5-r1"
    assert _run_name({"N": 1.234e9, "budget": 1.2e21}) == "N1.23B-C1.2e21"


def _study_outputs(layout: StudyLayout) -> None:
    """What the sync reads beside the runs: the runs table, laws.json, the report, the curation summary."""
    plan = json.loads(layout.plan.read_text())
    pd.DataFrame([{"run_id": r["run_id"], "budget": r["budget"], "N": r["N"], "status": "ok"}
                  for r in plan["runs"].values()]).to_parquet(layout.runs_table)
    layout.laws.write_text(json.dumps({
        "chinchilla": {"params": {"E": 1.5, "alpha": 0.3}, "ci95": {"E": [1.2, 1.9], "alpha": [None, 0.4]}},
        "isoflop": None, "settings": {"bootstrap": 50}, "flops_convention": "nonembed_head_attention"}))
    layout.report.write_text("# Scaling-law study `view`\n\n2 training runs over 2 budgets.\n\n## Warnings\n\n"
                             "- chinchilla: E is loose\n\n## Data\n\nmany tables\n")
    curated = layout.curated(plan["ids"]["curated"])
    curated.mkdir(parents=True)
    (curated / "curation.json").write_text(json.dumps({
        "split": {"train": {"code": {"documents": 9, "bytes": 900}}},
        "ingest": {"by_domain": {"code": {"documents": 10}}}, "curation": {"config": {"exact": True}, "shards": 1}}))


def test_the_sync_builds_one_study_run_with_its_children_and_reruns_as_a_no_op(tmp_path):
    config, layout = _study(tmp_path)
    _study_outputs(layout)
    tracking = Tracking.of(config)
    # a live-logging job raced another and made a second parent for the same plan: the sync keeps one
    from mlflow.tracking import MlflowClient

    log_training_run(tracking, _run(), layout.run_dir("abc123def456"))
    client = MlflowClient(tracking.uri)
    experiment_id = client.get_experiment_by_name("view").experiment_id
    client.create_run(experiment_id, tags={"isoflop.kind": "study", "isoflop.plan_id": "plan00000001",
                                           "isoflop.study": "view"})

    summary = sync_study(tracking, layout, layout.plan, layout.tracked, config)
    runs = client.search_runs([experiment_id])
    [study] = [r for r in runs if r.data.tags["isoflop.kind"] == "study"]
    assert summary["study"] == study.info.run_id and study.data.params["study"] == "view"
    assert "2 training runs (2 finished)" in study.data.tags["mlflow.note.content"]
    children = sorted(r.data.tags["isoflop.kind"] for r in runs
                      if r.data.tags.get("mlflow.parentRunId") == study.info.run_id)
    assert children == ["curation", "fit", "train", "train"] and len(runs) == 5

    [fit] = [r for r in runs if r.data.tags["isoflop.kind"] == "fit"]
    assert fit.data.metrics == {"chinchilla.E": 1.5, "chinchilla.E.lo95": 1.2, "chinchilla.E.hi95": 1.9,
                                "chinchilla.alpha": 0.3, "chinchilla.alpha.hi95": 0.4}
    assert fit.data.tags["mlflow.note.content"] == ("2 training runs over 2 budgets.\n\n**Warnings**\n\n"
                                                    "- chinchilla: E is loose")
    # a local store's artifacts are served from the study's folder (a plain client cannot open them itself)
    folder = Path(tracking.artifacts) / fit.info.artifact_uri.removeprefix("mlflow-artifacts:/")
    assert json.loads((folder / "config.json").read_text())["study"] == "view"
    artifacts = {path.name for path in folder.iterdir()}
    assert {"config.json", "plan.json", "laws.json", "runs.parquet", "report.md"} <= artifacts

    again = sync_study(tracking, layout, layout.plan, layout.tracked, config)
    assert again == summary and len(client.search_runs([experiment_id])) == 5


def test_a_sync_killed_inside_a_training_run_is_finished_by_the_next_without_an_orphan(tmp_path, monkeypatch):
    config, layout = _study(tmp_path)
    _study_outputs(layout)
    tracking = Tracking.of(config)

    class Killed(BaseException):  # what SIGKILL leaves: the run created, nothing after it written
        pass

    def killed(*args, **kwargs):
        raise Killed

    import isoflop.track

    with monkeypatch.context() as patched:
        patched.setattr(isoflop.track, "_log_batches", killed)
        with pytest.raises(Killed):
            sync_study(tracking, layout, layout.plan, layout.tracked, config)
    sync_study(tracking, layout, layout.plan, layout.tracked, config)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking.uri)
    runs = client.search_runs([client.get_experiment_by_name("view").experiment_id])
    assert sorted((r.data.tags.get("isoflop.kind", "?"), r.info.status) for r in runs) == [
        ("curation", "FINISHED"), ("fit", "FINISHED"), ("study", "FINISHED"), ("train", "FINISHED"),
        ("train", "FINISHED")]


def test_a_copied_results_folder_still_opens_its_artifacts(tmp_path):
    config, layout = _study(tmp_path)
    mlflow_id = log_training_run(Tracking.of(config), _run(), layout.run_dir("abc123def456"))
    copy = tmp_path / "elsewhere"
    shutil.copytree(tmp_path / "results", copy)
    shutil.rmtree(tmp_path / "results")  # nothing may point back at the original
    tracking = Tracking.of({**config, "results_dir": str(copy)})
    port = _free_port()
    server = subprocess.Popen(ui_command(tracking, port), env={**os.environ, **UI_ENVIRONMENT},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        uri = _wait_for(server, f"http://127.0.0.1:{port}")
        from mlflow.tracking import MlflowClient

        opened = Path(MlflowClient(uri).download_artifacts(mlflow_id, "result.json", str(tmp_path)))
        assert opened.read_bytes() == (copy / "view" / "runs" / "abc123def456" / "result.json").read_bytes()
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_mlflow_tracking_uri_chooses_the_store_only_where_the_config_leaves_it_unset(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert Tracking.of(validate_config({"results_dir": str(tmp_path)})).uri == "http://127.0.0.1:5999"
    chosen = validate_config({"results_dir": str(tmp_path), "tracking": {"uri": "http://127.0.0.1:6001"}})
    assert Tracking.of(chosen).uri == "http://127.0.0.1:6001"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert Tracking.of(validate_config({"results_dir": str(tmp_path)})).uri.startswith("sqlite:///")


def test_a_corrupt_store_is_named_and_rebuilt_from_the_files_without_duplicates(tmp_path):
    from isoflop.track import StoreCorrupt, sync_pending, sync_study_or_defer

    config, layout = _study(tmp_path)
    _study_outputs(layout)
    tracking = Tracking.of(config)
    configfile = tmp_path / "config.json"
    configfile.write_text(json.dumps(config))

    def track_sync(*args):  # a process of its own: MLflow keeps one engine per store URI for a process's life
        done = subprocess.run([sys.executable, "-m", "isoflop.cli", "track-sync", "--config", str(configfile), *args],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return json.loads(layout.tracked.read_text())

    first = track_sync()
    layout.mlflow_db.write_bytes(b"not a database" * 100)
    with pytest.raises(StoreCorrupt) as corrupt:
        log_training_run(tracking, _run(), layout.run_dir("abc123def456"))
    assert str(corrupt.value) == (f"MLflow store {layout.mlflow_db.resolve()} is not a SQLite database: rebuild it "
                                  "from the run files with `isoflop track-sync --rebuild`")
    # the workflow's sync fails nothing: it marks its output pending, and the next run of the workflow retries
    assert "pending" in sync_study_or_defer(tracking, layout, layout.plan, layout.tracked, config)
    assert sync_pending(layout.tracked)
    rebuilt = track_sync("--rebuild")
    assert not sync_pending(layout.tracked) and len(rebuilt["runs"]) == 2 and rebuilt["runs"] != first["runs"]
    [aside] = layout.root.glob("mlflow.db.corrupt-*")
    assert aside.read_bytes() == b"not a database" * 100
    client, experiment = _client_of(config)
    kinds = sorted(run.data.tags["isoflop.kind"] for run in client.search_runs([experiment.experiment_id]))
    assert kinds == ["curation", "fit", "study", "train", "train"]
    for mlflow_id in rebuilt["runs"].values():
        assert [(m.step, m.value) for m in client.get_metric_history(mlflow_id, "train_loss")] == [(1, 5.0), (2, 4.5)]


def test_a_sync_logs_a_servers_runs_at_once_and_the_store_holds_every_point_of_every_run(mlflow_server, tmp_path):
    from tracking_checks import kinds, store_points, study_points, synthetic_study

    config = synthetic_study(tmp_path / "results", "pooled", 24, steps=6, uri=mlflow_server)
    layout, tracking = StudyLayout.of(config), Tracking.of(config)
    broken = layout.run_dir(f"{13:012x}") / "result.json"
    result = broken.read_text()
    broken.write_text("{")  # a run the sync cannot read: its error ends the sync, not lost in a thread
    with pytest.raises(json.JSONDecodeError):
        sync_study(tracking, layout, layout.plan, layout.tracked, config, threads=4)
    broken.write_text(result)
    summary = sync_study(tracking, layout, layout.plan, layout.tracked, config, threads=4)
    assert list(summary["runs"]) == list(pd.read_parquet(layout.runs_table)["run_id"])  # in the table's order
    assert len(set(summary["runs"].values())) == 24 and kinds(tracking.uri, "pooled")["train"] == 24
    assert store_points(tracking.uri, "pooled", study_points(layout)) == study_points(layout)
    again = sync_study(tracking, layout, layout.plan, layout.tracked, config, threads=1)  # serially: a no-op
    assert again["runs"] == summary["runs"]


def _two_studies_in_one_experiment(store: str, experiment: str, results: Path) -> None:
    """Two studies logging to one experiment of `store`, with the same run ids (a content id can repeat across
    studies): each one's sync leaves the other study's view exactly as it was."""
    from mlflow.tracking import MlflowClient
    from tracking_checks import synthetic_study

    from isoflop.track import STUDY_TAG

    configs = {}
    for study in ("alpha", "beta"):
        config = synthetic_study(results, study, 3, uri=store)
        config["tracking"]["experiment"] = experiment
        configs[study] = config

    def sync(study: str) -> dict:
        config = configs[study]
        layout = StudyLayout.of(config)
        return sync_study(Tracking.of(config), layout, layout.plan, layout.tracked, config)

    first = {study: sync(study) for study in ("alpha", "beta")}
    assert sync("alpha") == first["alpha"]  # beta's sync replaced, moved or duplicated none of alpha's runs
    client = MlflowClient(store)
    runs = client.search_runs([first["alpha"]["experiment_id"]], max_results=100)
    assert len(runs) == 2 * (3 + 3)  # per study: 3 training runs, its parent, the fit and the curation
    for study, summary in first.items():
        mine = [run for run in runs if run.data.tags[STUDY_TAG] == study]
        assert sorted(run.data.tags["isoflop.kind"] for run in mine) == ["curation", "fit", "study"] + ["train"] * 3
        assert {run.data.tags.get("mlflow.parentRunId") for run in mine if run.info.run_id != summary["study"]} == {
            summary["study"]}
        assert all(run.data.tags.get("isoflop.in_plan", "true") == "true" for run in mine)


def test_two_studies_in_one_experiment_keep_their_own_runs_fit_and_parent(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a store named by its URI keeps MLflow's default artifact folder, ./mlruns
    _two_studies_in_one_experiment(f"sqlite:///{tmp_path / 'shared.db'}", "shared", tmp_path / "results")


@pytest.mark.server
def test_two_studies_in_one_experiment_of_a_server_keep_their_own_runs(postgres_mlflow, tmp_path):
    _, state = postgres_mlflow
    _two_studies_in_one_experiment(state["uri"], f"shared-{tmp_path.name}", tmp_path / "results")
