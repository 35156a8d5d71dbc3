"""Tracking under failure and load (issue 12): a tracking server where nothing listens, a corrupt or deleted
SQLite store, concurrent syncs, 8 and 16 concurrent logging processes against SQLite and the PostgreSQL-backed
server. Files are the truth: every training job succeeds, and after a sync the store holds every run once
with every metric point."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from isoflop.config import load_config
from isoflop.layout import StudyLayout
from isoflop.tracking_server import free_port, start_mlflow, stop_mlflow
from tracking_checks import (ISOFLOP, kinds, run_smoke, smoke_config, store_points, study_points,
                             synthetic_study, track_sync)

pytestmark = pytest.mark.server

STUDY_KINDS = {"train": 10, "study": 1, "fit": 1, "curation": 1}  # the smoke study's view: 9 grid runs, 1 forecast run


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The smoke study as a user runs it (default SQLite store): (its folder, config file, wall seconds)."""
    workdir = tmp_path_factory.mktemp("smoke-tracked")
    configfile = smoke_config(workdir / "smoke.yaml")
    done, seconds = run_smoke(workdir, configfile)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return workdir, configfile, seconds


def _layout(workdir: Path, configfile: Path) -> StudyLayout:
    config = load_config(configfile)
    return StudyLayout.of({**config, "results_dir": str(workdir / config["results_dir"])})


def _assert_exact(uri: str, experiment: str, layout: StudyLayout, expected_kinds=STUDY_KINDS):
    expected = study_points(layout)
    assert store_points(uri, experiment, expected) == expected
    assert kinds(uri, experiment) == expected_kinds


def test_an_unreachable_server_costs_the_study_seconds_and_the_next_run_fills_the_store(smoke, postgres_mlflow,
                                                                                       tmp_path):
    _, _, normal_seconds = smoke
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    workdir = tmp_path / "study"
    workdir.mkdir()
    configfile = smoke_config(workdir / "dead.yaml", tracking={"uri": dead, "live": True})
    done, seconds = run_smoke(workdir, configfile)
    assert done.returncode == 0, done.stderr[-3000:]
    layout = _layout(workdir, configfile)
    assert layout.runs_table.exists() and layout.laws.exists() and layout.report.exists()
    print(f"smoke study: {normal_seconds:.0f} s with its SQLite store, {seconds:.0f} s with {dead} unreachable "
          f"(ratio {seconds / normal_seconds:.2f}, measured under load)")
    assert seconds <= 1.5 * normal_seconds
    console = done.stdout + done.stderr
    [line] = [line for line in console.splitlines() if "MLflow not updated" in line]  # reported once
    assert f"MLflow server {dead} does not answer" in line and "Traceback" not in console
    logs = [path.read_text() for path in layout.log("train/x").parent.glob("*.log")]
    assert len(logs) == 10 and all(f"skipped: MLflow server {dead} does not answer" in text for text in logs)

    # the next workflow run, now with MLFLOW_TRACKING_URI at a live server (the config leaves the URI unset),
    # runs only the sync; nothing else reruns and nothing is logged twice
    _, state = postgres_mlflow
    live = smoke_config(workdir / "live.yaml", tracking={"live": True, "experiment": "unreachable-then-live"})
    table_bytes = layout.runs_table.read_bytes()
    again, _ = run_smoke(workdir, live, env={"MLFLOW_TRACKING_URI": state["uri"]})
    assert again.returncode == 0, again.stderr[-3000:]
    assert layout.runs_table.read_bytes() == table_bytes
    assert json.loads(layout.tracked.read_text())["tracking_uri"] == state["uri"]
    assert "rule track_study:" in again.stderr and "rule train:" not in again.stderr
    synced = track_sync(live, cwd=workdir, env={"MLFLOW_TRACKING_URI": state["uri"]})
    assert synced.returncode == 0, synced.stderr
    _assert_exact(state["uri"], "unreachable-then-live", layout)


def test_a_corrupt_store_is_named_with_a_hint_and_rebuilt_from_the_files(smoke, tmp_path):
    source, configfile, _ = smoke
    workdir = tmp_path / "copy"
    shutil.copytree(source, workdir)
    layout = _layout(workdir, configfile)
    layout.mlflow_db.write_bytes(b"\x00garbage" * 1000)
    broken = track_sync(configfile, cwd=workdir)
    assert broken.returncode == 1 and "Traceback" not in broken.stderr
    assert broken.stderr.strip().splitlines()[-1].endswith(
        f"MLflow store {layout.mlflow_db.resolve()} is not a SQLite database: rebuild it from the run files with "
        "`isoflop track-sync --rebuild`")
    rebuilt = track_sync(configfile, "--rebuild", cwd=workdir)
    assert rebuilt.returncode == 0, rebuilt.stderr
    [aside] = layout.root.glob("mlflow.db.corrupt-*")
    assert aside.read_bytes() == b"\x00garbage" * 1000  # kept for a post-mortem
    _assert_exact(f"sqlite:///{layout.mlflow_db.resolve()}", "smoke", layout)


def test_concurrent_syncs_take_turns_and_log_nothing_twice(smoke, tmp_path):
    source, configfile, _ = smoke
    workdir = tmp_path / "copy"
    shutil.copytree(source, workdir)
    layout = _layout(workdir, configfile)
    layout.mlflow_db.unlink()  # both syncs rebuild the store from nothing at once
    shutil.rmtree(layout.mlflow_artifacts)
    both = [subprocess.Popen([*ISOFLOP, "track-sync", "--config", str(configfile)], cwd=workdir,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for sync in both:
        _, stderr = sync.communicate(timeout=600)
        assert sync.returncode == 0, stderr
    _assert_exact(f"sqlite:///{layout.mlflow_db.resolve()}", "smoke", layout)


LOGGER = """
import json, sys
from isoflop.layout import StudyLayout
from isoflop.track import Tracking, log_training_run_safely
config, run_ids = json.loads(sys.argv[1]), sys.argv[2:]
layout, plan = StudyLayout.of(config), json.loads(StudyLayout.of(config).plan.read_text())
for run_id in run_ids:
    log_training_run_safely(Tracking.of(config), plan["runs"][run_id], layout.run_dir(run_id))
"""


# 8 jobs against the server are test_server.py's real training jobs; here 16 against it, 8 and 16 against SQLite
@pytest.mark.parametrize("store,jobs,fault", [("sqlite", 8, "corrupt"), ("sqlite", 16, "delete"),
                                              ("server", 16, "restart")])
def test_concurrent_logging_processes_survive_a_failing_store_and_the_sync_makes_it_exact(
        store, jobs, fault, postgres_mlflow, tmp_path):
    """`jobs` processes log 2 runs each at once, as `jobs` training jobs with `tracking.live` would (real
    training jobs would be too heavy for 2 cores); the store fails under them once the first has finished."""
    server_root, state = postgres_mlflow
    study = f"load-{store}-{jobs}"
    config = synthetic_study(tmp_path / "results", study, 2 * jobs, uri=state["uri"] if store == "server" else None)
    layout = StudyLayout.of(config)
    plan = json.loads(layout.plan.read_text())
    run_ids = sorted(plan["runs"])
    loggers = [subprocess.Popen([sys.executable, "-c", LOGGER, json.dumps(config), *run_ids[2 * i: 2 * i + 2]],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for i in range(jobs)]
    while all(logger.poll() is None for logger in loggers):
        time.sleep(0.2)
    if fault == "corrupt":
        with open(layout.mlflow_db, "r+b") as handle:
            handle.write(os.urandom(4096))
    elif fault == "delete":
        layout.mlflow_db.unlink()
    else:
        stop_mlflow(server_root)
        start_mlflow(server_root)
    for logger in loggers:
        _, stderr = logger.communicate(timeout=600)
        assert logger.returncode == 0, stderr[-2000:]
    configfile = tmp_path / "config.yaml"
    configfile.write_text(json.dumps(config))
    synced = track_sync(configfile, *(["--rebuild"] if fault == "corrupt" else []), cwd=tmp_path)
    assert synced.returncode == 0, synced.stderr
    uri = state["uri"] if store == "server" else f"sqlite:///{layout.mlflow_db.resolve()}"
    _assert_exact(uri, study, layout, {"train": 2 * jobs, "study": 1, "fit": 1, "curation": 1})
