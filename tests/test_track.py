"""MLflow as a view, against a real `mlflow server` started by the test on 127.0.0.1."""

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from isoflop.config import validate_config
from isoflop.track import Tracking, create_store, log_training_run, log_training_run_safely


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
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(f"{uri}/health", timeout=2)
            break
        except OSError:
            assert server.poll() is None, "mlflow server exited"
            assert time.time() < deadline, "mlflow server did not start within 120 s"
            time.sleep(0.5)
    yield uri
    server.terminate()
    server.wait(timeout=30)


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
    create_store(config, tmp_path / "store.json")
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


def test_tracking_failure_never_fails_the_run(tmp_path, caplog, monkeypatch):
    dead = f"http://127.0.0.1:{_free_port()}"
    config = _config(dead, tmp_path, "unreachable")
    run_dir = tmp_path / "run"
    _write_run(run_dir, 3.0)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    assert log_training_run_safely(config, _run(), run_dir) is None
    assert "MLflow logging of run abc123def456 failed" in caplog.text


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
