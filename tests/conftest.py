import contextlib
import os
import signal
import socket
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Published reference data live in the shared folder beside the checkout (CI has it; a user's clone may not).
# ISOFLOP_SHARED points elsewhere (a test of the skip path sets it to a folder that does not exist).
SHARED = Path(os.environ.get("ISOFLOP_SHARED", REPO.parent / "shared"))

os.environ.setdefault("ISOFLOP_PROGRESS", "0")
# A developer's MLFLOW_TRACKING_URI would send the tests' studies to their server (Tracking.of honours it)
os.environ.pop("MLFLOW_TRACKING_URI", None)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now, for a server a test starts."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def shared_file(relative: str) -> Path:
    """A file under the shared folder, or skip the calling test with a one-line reason naming it."""
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"reference data {path} not found (the shared folder is absent beside this checkout)")
    return path


def _running_under(folder: Path) -> dict[int, str]:
    """pid -> command line of every process (but this one) whose command line names a path under `folder`."""
    prefix = f"{folder}{os.sep}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
        except OSError:  # it ended meanwhile
            continue
        if prefix in command:
            found[int(entry.name)] = command.replace(b"\0", b" ").decode(errors="replace").strip()[:200]
    return found


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


# A SIGTERM (a CI time limit, `kill`, SLURM's) ends pytest like Ctrl-C, through every fixture's teardown, so the
# services and studies the tests started are stopped rather than orphaned (SIGTERM's default ends at once).
if threading.current_thread() is threading.main_thread():
    signal.signal(signal.SIGTERM, _interrupt)


@pytest.fixture(scope="session", autouse=True)
def nothing_left_running(tmp_path_factory):
    """After the session: no process that the tests started is still running. Every service and study a test
    starts names its folder under the session's temporary folder on its command line (a study's
    `--directory`, PostgreSQL's data folder, MLflow's artifacts, SLURM's config), so one still running then
    was left by a fixture or test that failed to stop it: it is stopped here (by its pid) and named."""
    yield
    left = _running_under(tmp_path_factory.getbasetemp())
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not left, f"processes left running by the tests (now killed): {left}"


@pytest.fixture
def default_config():
    from isoflop.config import validate_config

    return validate_config({})


@pytest.fixture(scope="session")
def faults_reference(tmp_path_factory):
    """(config, working directory) of the fault tests' tiny study run uninterrupted, once per session."""
    from faults_study import reference_study

    return reference_study(tmp_path_factory.mktemp("faults"))


@pytest.fixture(scope="session")
def postgres_mlflow(tmp_path_factory):
    """A real `mlflow server` on a throwaway PostgreSQL cluster (installed where missing), for the session:
    yields its folder (for `isoflop.tracking_server.stop_mlflow`/`start_mlflow`) and its state ("uri")."""
    from isoflop import tracking_server

    root = tmp_path_factory.mktemp("postgres-mlflow")
    try:
        state = tracking_server.start(root)
    except tracking_server.ServiceUnavailable as err:
        pytest.skip(f"no PostgreSQL-backed MLflow server here: {err}")
    try:
        yield root, state
    finally:
        tracking_server.stop(root)
