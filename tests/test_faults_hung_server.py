"""A tracking server that answers its /health but never the API (issue 23): four training jobs logging live at
once each give up within `tracking.deadline_seconds`, together rather than one after another, say so once,
and none holds the store lock while it waits on the server."""

import fcntl
import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from isoflop.layout import StudyLayout
from tracking_checks import synthetic_study

pytestmark = pytest.mark.faults

DEADLINE = 6.0
LOGGERS = 4
# one training job's live logging; mlflow imported first, as a training job has imported torch by then
LOGGER = """
import json, sys, time
import mlflow.tracking
from isoflop.layout import StudyLayout
from isoflop.track import Tracking, log_training_run_safely
config, run_id = json.loads(sys.argv[1]), sys.argv[2]
layout = StudyLayout.of(config)
run = json.loads(layout.plan.read_text())["runs"][run_id]
started = time.perf_counter()
logged = log_training_run_safely(Tracking.of(config), run, layout.run_dir(run_id))
print(json.dumps({"seconds": time.perf_counter() - started, "logged": logged}))
"""


@pytest.fixture
def hung_server():
    """(URI, API requests received so far) of a server whose /health answers and whose API never does."""
    released, received = threading.Event(), []

    class Hung(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/health":
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")
                return
            received.append(self.path)
            released.wait()  # until the test ends: the request hangs, its connection open

        do_POST = do_GET

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hung)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        released.set()
        server.shutdown()
        server.server_close()


def test_live_loggers_against_a_hung_server_each_give_up_at_the_deadline_not_in_turn(hung_server, tmp_path):
    uri, received = hung_server
    config = synthetic_study(tmp_path / "results", "hung", LOGGERS, uri=uri)
    config["tracking"]["deadline_seconds"] = DEADLINE
    layout = StudyLayout.of(config)
    run_ids = sorted(json.loads(layout.plan.read_text())["runs"])
    loggers = [subprocess.Popen([sys.executable, "-c", LOGGER, json.dumps(config), run_id], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for run_id in run_ids]
    waited = time.time() + 120
    while len(received) < LOGGERS and time.time() < waited:
        time.sleep(0.1)
    assert len(received) >= LOGGERS, f"the loggers reached the API {len(received)} times: {received}"
    # every logger is waiting on the server now; none holds the store lock meanwhile
    layout.store_lock.parent.mkdir(parents=True, exist_ok=True)
    with open(layout.store_lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises BlockingIOError where a logger holds it
        fcntl.flock(handle, fcntl.LOCK_UN)
    outcomes = []
    for logger in loggers:
        stdout, stderr = logger.communicate(timeout=120)
        assert logger.returncode == 0, stderr[-2000:]
        outcomes.append((json.loads(stdout.strip().splitlines()[-1]), stderr))
    seconds = sorted(outcome["seconds"] for outcome, _ in outcomes)
    # each at the deadline (the old code: 30, 47, 65 and 82 s, queued on the lock behind MLflow's retries)
    assert all(DEADLINE - 0.5 < s < DEADLINE + 2.0 for s in seconds), seconds
    for (outcome, stderr), run_id in zip(outcomes, run_ids):
        assert outcome["logged"] is None
        assert stderr.count("given up after") == 1, stderr
        assert f"MLflow logging of run {run_id} given up after 6 s (tracking.deadline_seconds)" in stderr
