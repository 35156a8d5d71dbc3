"""The MLflow UI as a researcher opens it (`make mlflow-ui`) on a finished smoke study, in headless Chromium.

Screenshots land in tests/artifacts/ (git-ignored): the experiment's runs, the study's parent run, and a
training run's loss chart. The structure is asserted through MLflow's REST API and the rendered pages.
"""

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from isoflop.config import validate_config
from isoflop.track import UI_ENVIRONMENT, Tracking, ui_command
from test_study_e2e import REPO, snakemake

pytestmark = pytest.mark.slow
ARTIFACTS = REPO / "tests" / "artifacts"


def _chromium() -> str:
    """The headless browser, installed from Debian if it is missing (or skip with the reason)."""
    found = shutil.which("chromium")
    if found is None:
        try:
            install = subprocess.run(["apt-get", "install", "-y", "chromium"], capture_output=True, text=True,
                                     timeout=900)
        except (OSError, subprocess.TimeoutExpired) as err:
            pytest.skip(f"chromium is missing and apt-get could not run: {err}")
        found = shutil.which("chromium")
        if found is None:
            pytest.skip(f"chromium is missing and `apt-get install -y chromium` failed: {install.stderr[-200:]}")
    return found


def _rest(uri: str, endpoint: str, body: dict | None = None) -> dict:
    """MLflow's REST API: a GET of `endpoint` (with its query), or a POST of `body`."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{uri}/api/2.0/mlflow/{endpoint}", data=data,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _render(chromium: str, url: str, screenshot: Path) -> str:
    """Render `url` (waiting for the single-page app's requests), save a screenshot, return the page's DOM."""
    common = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
              "--window-size=1600,1000", "--virtual-time-budget=20000"]
    subprocess.run([*common, f"--screenshot={screenshot}", url], capture_output=True, timeout=180, check=True)
    return subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=180,
                          check=True).stdout


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """A finished smoke study and its UI, started as `make mlflow-ui` starts it: (base URL, tracking)."""
    workdir = tmp_path_factory.mktemp("smoke-ui")
    done = snakemake(workdir)
    assert done.returncode == 0, done.stderr[-4000:]
    smoke = yaml.safe_load((REPO / "tests" / "smoke.yaml").read_text())
    tracking = Tracking.of(validate_config({**smoke, "results_dir": str(workdir / "results")}))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.time()
    server = subprocess.Popen(ui_command(tracking, port), env={**os.environ, **UI_ENVIRONMENT},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uri = f"http://127.0.0.1:{port}"
    while True:
        try:
            urllib.request.urlopen(f"{uri}/health", timeout=2)
            break
        except OSError:
            assert server.poll() is None, "the MLflow UI exited"
            assert time.time() - started < 120, "the MLflow UI did not start within 120 s"
            time.sleep(0.5)
    print(f"MLflow UI up in {time.time() - started:.1f} s at {uri}")
    yield uri, tracking
    server.terminate()
    server.wait(timeout=30)


def test_the_ui_shows_the_study_run_with_its_children(ui):
    uri, tracking = ui
    chromium = _chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    experiment = _rest(uri, f"experiments/get-by-name?experiment_name={tracking.experiment}")["experiment"]
    tags = {tag["key"]: tag["value"] for tag in experiment["tags"]}
    assert tags["mlflow.experimentKind"] == "custom_model_development"
    search = {"experiment_ids": [experiment["experiment_id"]], "max_results": 100}
    [study] = _rest(uri, "runs/search", {**search, "filter": "tags.`isoflop.kind` = 'study'"})["runs"]
    parent = study["info"]["run_id"]
    children = _rest(uri, "runs/search", {**search, "filter": f"tags.`mlflow.parentRunId` = '{parent}'"})["runs"]
    names = sorted(child["info"]["run_name"] for child in children)
    assert len(children) == 12 and {"fit", "curation"} <= set(names)  # 9 grid runs, the forecast run, fit, curation
    train = [child for child in children if child["info"]["run_name"].startswith("N")]
    assert all("-C" in child["info"]["run_name"] for child in train) and len(train) == 10

    base = f"{uri}/#/experiments/{experiment['experiment_id']}"
    ml = "?workflowType=machine_learning"  # the UI's "Model training" side (it remembers a choice per browser)
    pages = {
        "experiment_runs": f"{base}/runs{ml}",
        "study_run": f"{base}/runs/{parent}{ml}",
        "training_run": f"{base}/runs/{train[0]['info']['run_id']}{ml}",
        # one training run's loss against tokens, on the UI's metric page
        "loss_vs_tokens": (f"{uri}/#/metric?runs=%5B%22{train[0]['info']['run_id']}%22%5D"
                           f"&metric=%22train_loss_vs_tokens%22&experiments=%5B%22{experiment['experiment_id']}%22%5D"
                           "&plot_metric_keys=%5B%22train_loss_vs_tokens%22%5D&x_axis=step"),
    }
    rendered = {}
    for name, url in pages.items():
        rendered[name] = _render(chromium, url, ARTIFACTS / f"mlflow_{name}.png")
        assert (ARTIFACTS / f"mlflow_{name}.png").stat().st_size > 20_000, name
        print(f"screenshot: {ARTIFACTS / f'mlflow_{name}.png'}")
    assert study["info"]["run_name"] in rendered["experiment_runs"]
    assert "Child runs" in rendered["study_run"]
    assert any(child["info"]["run_name"] in rendered["study_run"] for child in train)
    one = rendered["training_run"]
    assert train[0]["info"]["run_name"] in one and study["info"]["run_name"] in one  # its parent is linked
    assert all(metric in one for metric in ("final.val_loss", "budget", "N_nonembed", "train_loss"))
    chart = rendered["loss_vs_tokens"]
    assert "train_loss_vs_tokens" in chart and "js-line" in chart  # plotly drew the curve
