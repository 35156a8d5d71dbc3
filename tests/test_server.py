"""The smoke study logging live from 8 parallel jobs to a real `mlflow server` on PostgreSQL (issue 14), then
the same with the server stopped mid-study and restarted: every training job succeeds, and the store holds
each run once with every metric point of its files (counted through the MLflow client)."""

import time
from pathlib import Path

import pytest

from isoflop.config import load_config
from isoflop.layout import StudyLayout
from isoflop.tracking_server import start_mlflow, stop_mlflow
from tracking_checks import kinds, run_smoke, smoke_config, store_points, study_points, track_sync

pytestmark = pytest.mark.server

STUDY_KINDS = {"train": 10, "study": 1, "fit": 1, "curation": 1}  # 9 grid runs and the forecast run


def _live_study(workdir: Path, uri: str, study: str) -> tuple[Path, StudyLayout]:
    configfile = smoke_config(workdir / "smoke.yaml", study, tracking={"uri": uri, "live": True})
    config = load_config(configfile)
    return configfile, StudyLayout.of({**config, "results_dir": str(workdir / config["results_dir"])})


def test_eight_parallel_jobs_log_every_point_to_the_postgres_server(postgres_mlflow, tmp_path):
    _, state = postgres_mlflow
    configfile, layout = _live_study(tmp_path, state["uri"], "server-live")
    done, seconds = run_smoke(tmp_path, configfile, cores=8)
    assert done.returncode == 0, done.stderr[-3000:]
    print(f"smoke study with 8 jobs logging live to PostgreSQL-backed MLflow: {seconds:.0f} s (under load)")
    # every training job logged itself (the sync found each run there and only checked it)
    train_logs = list(layout.log("train/x").parent.glob("*.log"))
    assert len(train_logs) == 10 and not any("skipped" in path.read_text() for path in train_logs)
    expected = study_points(layout)
    assert store_points(state["uri"], "server-live", expected) == expected
    assert kinds(state["uri"], "server-live") == STUDY_KINDS


def test_a_server_stopped_mid_study_and_restarted_fails_nothing_and_the_sync_makes_it_exact(postgres_mlflow,
                                                                                           tmp_path):
    server_root, state = postgres_mlflow
    configfile, layout = _live_study(tmp_path, state["uri"], "server-restart")
    study = run_smoke(tmp_path, configfile, cores=8, background=True)
    while len(list(layout.run_dir("x").parent.glob("*/result.json"))) < 3 and study.poll() is None:
        time.sleep(0.5)
    stop_mlflow(server_root)
    stopped_at = len(list(layout.run_dir("x").parent.glob("*/result.json")))
    time.sleep(5)  # some jobs finish and try to log while it is down
    start_mlflow(server_root)
    output, _ = study.communicate(timeout=1800)
    assert study.returncode == 0, output[-3000:]
    assert layout.runs_table.exists() and layout.laws.exists() and layout.report.exists()
    assert 3 <= stopped_at < 9, "the server was not stopped mid-study"
    synced = track_sync(configfile, cwd=tmp_path)
    assert synced.returncode == 0, synced.stderr
    expected = study_points(layout)
    assert store_points(state["uri"], "server-restart", expected) == expected
    assert kinds(state["uri"], "server-restart") == STUDY_KINDS
