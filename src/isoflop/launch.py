"""Starting a study safely after any kill: one live run per working directory, and a stale lock cleared.

Snakemake locks its working directory with files under `.snakemake/locks/` that it deletes as it exits; a run
killed by SIGKILL, the OOM killer or a power loss leaves them behind, and the next run refuses to start with a
`LockException`. Snakemake cannot tell such a lock from a live run's. isoflop can: every Snakemake process
that parses this workflow (the Snakefile calls `claim_workdir`) holds an OS lock (`flock`) on
`.snakemake/isoflop.lock` for as long as it lives, and the kernel releases it when the process dies, however
it dies. So a process that gets the OS lock knows that no other run of the workflow is alive in the folder,
and removes any Snakemake lock there as stale (what `snakemake --unlock` does). A process that does not get
it leaves everything alone and says which process holds it.

`isoflop study` (what `make study` runs) takes the OS lock before it starts Snakemake, refuses with one line
while another process holds it, and hands the lock to the Snakemake process it becomes (`exec`), so there is
no moment between the check and the run when a second invocation could slip in.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import sys
from pathlib import Path

from isoflop.errors import UserError
from isoflop.layout import snakemake_locks, workdir_lock

# the descriptor of the OS lock `isoflop study` already holds, named for the Snakemake process it execs
LOCK_FD_ENV = "ISOFLOP_WORKDIR_LOCK_FD"
PROFILE = "workflow/profiles/local"

_held = None  # the lock file this process holds, open for as long as the process lives


def _try_lock(workdir: str | Path):
    """The lock file, open and exclusively locked by this process, or None while another process holds it."""
    path = workdir_lock(workdir)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")  # who holds it, for the message another invocation prints
    handle.flush()
    return handle


def _holder(workdir: str | Path) -> str:
    try:
        pid = workdir_lock(workdir).read_text().strip()
    except OSError:
        pid = ""
    return f"pid {pid}" if pid else "another process"


def _inherited_lock(workdir: str | Path):
    """The lock `isoflop study` took and passed on through exec, if it is this folder's lock file."""
    fd = os.environ.pop(LOCK_FD_ENV, None)  # popped: the jobs this process starts do not hold it
    if fd is None:
        return None
    try:
        handle = os.fdopen(int(fd), "a+")
        if os.path.samestat(os.fstat(handle.fileno()), os.stat(workdir_lock(workdir))):
            return handle
    except (OSError, ValueError):
        pass
    return None


def claim_workdir(workdir: str | Path = ".") -> bool:
    """Hold the working directory's OS lock for the rest of this process's life if no other process holds it,
    and then remove a Snakemake lock left by a killed run. Returns whether this process holds the lock; when
    it does not, prints one line naming the holder (Snakemake itself still refuses a second real run)."""
    global _held
    if _held is not None:
        return True
    _held = _inherited_lock(workdir) or _try_lock(workdir)
    if _held is None:
        print(f"isoflop: another run of this workflow ({_holder(workdir)}) is live in {Path(workdir).resolve()}; "
              "its Snakemake lock is left alone", file=sys.stderr)
        return False
    locks = snakemake_locks(workdir)
    if locks.is_dir() and any(locks.iterdir()):
        for stale in locks.iterdir():
            stale.unlink()
        print(f"isoflop: removed the Snakemake lock of a run that was killed ({locks.resolve()}; no live run holds "
              f"{workdir_lock(workdir)})", file=sys.stderr)
    return True


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "study", help="run the study workflow (what `make study` runs); safe to rerun after any kill",
        description="Run the Snakemake workflow of this checkout with the local profile. A run killed in any "
                    "way resumes by running the same command again (a stale Snakemake lock is removed when no "
                    "other run is live); while another run is live in the folder, this one is refused. "
                    "Arguments it does not know go to Snakemake.",
        epilog="examples:\n  isoflop study --config studies/markov.yaml\n"
               "  isoflop study --cores 2 --dry-run        (a Snakemake flag, passed on)\n",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config.yaml", help="study config (default: config.yaml)")
    parser.add_argument("--cores", default="all", help="cores Snakemake may use (default: all)")
    parser.add_argument("--directory", "-d", default=".",
                        help="Snakemake's working directory, where results/ and .snakemake/ live (default: .)")
    parser.set_defaults(func=study_command, passes_unknown_args=True)


def study_command(args) -> int:
    if not Path("Snakefile").is_file() or not Path(PROFILE).is_dir():
        raise UserError(f"no Snakefile and {PROFILE}/ in {Path.cwd()}: run `isoflop study` in the isoflop checkout")
    from isoflop.config import load_config

    load_config(args.config)  # what `isoflop check-config` does: refused before Snakemake evaluates any template
    lock = _try_lock(args.directory)
    if lock is None:
        raise UserError(f"another run of this workflow ({_holder(args.directory)}) is live in "
                        f"{Path(args.directory).resolve()}: wait for it to end or stop it, then run this again")
    os.set_inheritable(lock.fileno(), True)
    command = [sys.executable, "-m", "snakemake", "--profile", PROFILE, "--configfile", args.config,
               "--cores", args.cores, "--directory", args.directory, *args.snakemake_args]
    sys.stdout.flush()
    os.execve(sys.executable, command, {**os.environ, LOCK_FD_ENV: str(lock.fileno())})
    return 0  # not reached: this process is now Snakemake
