"""An MLflow tracking server with a PostgreSQL database behind it, started and stopped by one command.

`isoflop tracking-server start --dir DIR` makes a throwaway PostgreSQL cluster (Debian's `postgresql`,
installed where missing; `initdb` and `pg_ctl` run as the `postgres` system user when called as root, since
PostgreSQL refuses to run as root), listening on 127.0.0.1 only with a random password, then `mlflow server`
on it with its artifacts under DIR, detached from the terminal (its output goes to DIR/mlflow-server.log);
it prints the tracking URI once the server answers. `stop --dir DIR` stops both and deletes the database.
DIR/server.json records what `stop` needs. Ports are chosen free at start (or given).
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

STATE = "server.json"
START_SECONDS = 240  # a new PostgreSQL store runs MLflow's schema migrations before the server answers
DATABASE = "mlflow"
# MLflow 3's server also starts a job runner with a dozen consumer processes for GenAI jobs (scorers,
# prompt optimisation) that a study's runs never use; without it the UI is two processes and starts faster.
# The server here and `isoflop mlflow-ui` (isoflop.track) both run with it.
UI_ENVIRONMENT = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


class ServiceUnavailable(RuntimeError):
    """PostgreSQL or its Python driver is missing and cannot be installed here (the message says which)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _postgres_bin() -> Path:
    """The newest installed PostgreSQL's bin folder, installing Debian's `postgresql` if there is none."""
    def found():
        return sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))

    if not found() and os.geteuid() == 0 and shutil.which("apt-get"):
        install = ["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "--no-install-recommends",
                   "postgresql"]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        if subprocess.run(install, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=600", "update"], env=env, capture_output=True)
            subprocess.run(install, env=env, capture_output=True)
    if not found():
        raise ServiceUnavailable("PostgreSQL is not installed and could not be (needs root and apt-get: "
                                 "`apt-get install postgresql`)")
    return Path(found()[-1]).parent


def _driver() -> None:
    """MLflow reaches PostgreSQL through psycopg2 (pinned in requirements.txt), installed here if missing."""
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        requirements = Path(__file__).resolve().parents[2] / "requirements.txt"
        pins = ["-c", str(requirements)] if requirements.exists() else []
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "psycopg2-binary", *pins],
                       capture_output=True)
        try:
            import psycopg2  # noqa: F401
        except ImportError:
            raise ServiceUnavailable("the PostgreSQL driver psycopg2 is missing and `pip install psycopg2-binary` "
                                     "failed") from None


def _as_postgres_user(command: list[str]) -> list[str]:
    """PostgreSQL will not run as root: as root, run its tools as the `postgres` system user."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _wait_until_up(uri: str, pid: int, log_path: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            urllib.request.urlopen(f"{uri}/health", timeout=2).close()
            return
        except OSError:
            if not _alive(pid):
                raise RuntimeError(f"mlflow server exited; see {log_path}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not answer within {START_SECONDS} s; see {log_path}") from None
            time.sleep(0.5)


def _alive(pid: int) -> bool:
    try:  # reap it if it is our child, so an exited server is not a zombie that still "exists"
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def start(root, port: int | None = None, workers: int = 2) -> dict:
    """Start PostgreSQL and `mlflow server` for the folder `root`; returns the state (its "uri" is the tracking
    URI). Raises `ServiceUnavailable` where PostgreSQL or its driver cannot be installed."""
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    bin_dir = _postgres_bin()
    _driver()
    # the cluster lives in a folder of its own that the postgres user owns (root's temp folders are closed to it)
    cluster = Path(tempfile.mkdtemp(prefix="isoflop-postgres-"))
    if os.geteuid() == 0:
        account = pwd.getpwnam("postgres")
        os.chown(cluster, account.pw_uid, account.pw_gid)
    password = secrets.token_hex(16)
    password_file = cluster / "password"
    password_file.write_text(password)
    if os.geteuid() == 0:
        os.chown(password_file, account.pw_uid, account.pw_gid)
    data = cluster / "data"
    quiet = {"stdin": subprocess.DEVNULL, "capture_output": True, "text": True, "check": True}
    subprocess.run(_as_postgres_user([str(bin_dir / "initdb"), "-D", str(data), "-U", DATABASE,
                                      "--auth=scram-sha-256", f"--pwfile={password_file}", "-E", "UTF8"]), **quiet)
    password_file.unlink()
    pg_port = free_port()
    options = f"-c listen_addresses=127.0.0.1 -c port={pg_port} -c unix_socket_directories={cluster}"
    subprocess.run(_as_postgres_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(cluster / "postgres.log"),
                                      "-o", options, "-w", "-t", "120", "start"]), **quiet)
    subprocess.run([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(pg_port), "-U", DATABASE, DATABASE],
                   env={**os.environ, "PGPASSWORD": password}, **quiet)
    state = {"uri": None, "port": port or free_port(), "workers": workers, "pg_bin": str(bin_dir),
             "pg_cluster": str(cluster), "pg_port": pg_port,
             "backend": f"postgresql://{DATABASE}:{password}@127.0.0.1:{pg_port}/{DATABASE}",
             "artifacts": str(root / "artifacts"), "log": str(root / "mlflow-server.log"), "pid": None}
    state["uri"] = f"http://127.0.0.1:{state['port']}"
    _write_state(root, state)
    return start_mlflow(root)


def start_mlflow(root) -> dict:
    """(Re)start `mlflow server` on the recorded database and port, detached: its own session, no terminal."""
    root = Path(root).resolve()
    state = read_state(root)
    command = [str(Path(sys.executable).parent / "mlflow"), "server", "--artifacts-destination", state["artifacts"],
               "--host", "127.0.0.1", "--port", str(state["port"]), "--workers", str(state["workers"])]
    # the database URI (with its password) through the environment, which other users cannot read, not `ps`
    env = {**os.environ, **UI_ENVIRONMENT, "MLFLOW_BACKEND_STORE_URI": state["backend"]}
    with open(state["log"], "ab") as log_file:
        server = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                                  env=env, start_new_session=True)
    state["pid"] = server.pid
    _write_state(root, state)
    _wait_until_up(state["uri"], server.pid, Path(state["log"]))
    return state


def stop_mlflow(root) -> None:
    """Stop `mlflow server` (its whole process group: the workers too); the database keeps running."""
    state = read_state(root)
    pid = state.get("pid")
    if not pid or not _alive(pid):
        return
    for sig, seconds in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.2)


def stop(root) -> None:
    """Stop `mlflow server` and PostgreSQL, and delete the throwaway database cluster."""
    root = Path(root).resolve()
    if not (root / STATE).exists():
        return
    state = read_state(root)
    stop_mlflow(root)
    cluster = Path(state["pg_cluster"])
    subprocess.run(_as_postgres_user([str(Path(state["pg_bin"]) / "pg_ctl"), "-D", str(cluster / "data"), "-m",
                                      "fast", "-w", "stop"]), stdin=subprocess.DEVNULL, capture_output=True)
    shutil.rmtree(cluster, ignore_errors=True)
    (root / STATE).unlink()


def read_state(root) -> dict:
    return json.loads((Path(root) / STATE).read_text())


def _write_state(root: Path, state: dict) -> None:
    path = root / STATE
    path.touch(mode=0o600)  # it holds the database's password
    path.write_text(json.dumps(state, indent=2))


def command(args) -> int:
    """`isoflop tracking-server start|stop --dir DIR` (registered by isoflop.track)."""
    from isoflop.errors import UserError

    if args.action == "stop":
        stop(args.dir)
        print(f"stopped the tracking server of {args.dir}")
        return 0
    if (Path(args.dir) / STATE).exists():
        raise UserError(f"a tracking server of {args.dir} is already recorded in {Path(args.dir) / STATE}: "
                        f"`isoflop tracking-server stop --dir {args.dir}` first")
    try:
        state = start(args.dir, port=args.port, workers=args.workers)
    except ServiceUnavailable as err:
        raise UserError(str(err)) from None
    print(f"MLflow tracking server (PostgreSQL backend) at {state['uri']}; browse it there, and point a study at "
          f"it with tracking.uri: {state['uri']} (or MLFLOW_TRACKING_URI={state['uri']})")
    return 0
