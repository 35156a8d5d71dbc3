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
while another process holds it, and hands the lock to the Snakemake process it starts (the descriptor is
inherited, and this process holds it too until Snakemake ends), so there is no moment between the check and
the run when a second invocation could slip in.

What the terminal shows: Snakemake prints a block per job (every input, output and `reason:`), about 100 KB for
the default study. `isoflop study` reads Snakemake's output and shows one line per finished job with the count
done and the time elapsed, and on a terminal a progress bar below them; everything it does not recognise as
routine (errors, a job's own one-line failure, warnings, "Nothing to be done") is passed on unchanged. Snakemake
still writes its complete log to `.snakemake/log/`, whose path ends the output. A dry run, and `--all-output`,
show Snakemake's own output instead.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

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
    parser.add_argument("--all-output", action="store_true",
                        help="show Snakemake's own output (a block per job) instead of one line per finished job "
                             "and a progress bar; either way the complete log is written to .snakemake/log/")
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
    environment = {**os.environ, LOCK_FD_ENV: str(lock.fileno())}
    sys.stdout.flush()
    if args.all_output or _is_dry_run(args.snakemake_args):  # a dry run's job list is what the user asked for
        os.execve(sys.executable, command, environment)
    return _run_with_progress(command, environment, lock.fileno())


def _is_dry_run(snakemake_args: list[str]) -> bool:
    return any(arg in ("-n", "--dry-run", "--dryrun") or re.fullmatch(r"-[a-zA-Z]*n[a-zA-Z]*", arg) is not None
               for arg in snakemake_args)


def _run_with_progress(command: list[str], environment: dict, lock_fd: int) -> int:
    """Snakemake as a child whose stderr goes through `StudyProgress`; its exit status is returned."""
    child = subprocess.Popen(command, env=environment, pass_fds=(lock_fd,), stderr=subprocess.PIPE, text=True,
                             errors="replace", bufsize=1, preexec_fn=_end_with_parent)
    # Ctrl-C reaches Snakemake too (same process group): keep reading while it shuts its jobs down
    signal.signal(signal.SIGINT, lambda *_: None)
    signal.signal(signal.SIGTERM, lambda number, _frame: child.send_signal(number))
    progress = StudyProgress(sys.stderr)
    assert child.stderr is not None
    for line in child.stderr:
        progress.feed(line)
    status = child.wait()
    progress.finish(status)
    return status


def _end_with_parent() -> None:
    """In the child before it runs Snakemake: a SIGKILL of `isoflop study` alone must not leave Snakemake
    training on as an orphan that holds the inherited lock until its next write to the closed pipe, so Linux
    sends it SIGTERM (Snakemake's clean shutdown) when its parent dies."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _elapsed(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class StudyProgress:
    """Snakemake's output, shortened: one line per finished job (`isoflop: [done/total] h:mm:ss rule wildcards`)
    and, on a terminal, a bar redrawn below them every second; plain lines, no carriage return, elsewhere.

    Hidden: Snakemake's routine lines (the run header, the job stats table, each job's block of inputs, outputs
    and reasons, its "Finished" and "N of M steps" lines). Every other line passes unchanged, so an error block,
    a job's one-line failure or a warning is never lost."""

    ROUTINE = re.compile(
        r"(Assuming unrestricted shared filesystem usage\.|Using profile .* for setting default command line "
        r"arguments\.|Building DAG of jobs\.\.\.|Using shell: .*"
        r"|Provided (cores|resources): .*|Rules claiming more threads will be scaled down\.|Conda environments: .*"
        r"|Select jobs to execute\.\.\.|Execute \d+ jobs\.\.\.|Shell command: .*|host: .*|Elapsed time: .*"
        r"|\[\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4}\])")
    JOB = re.compile(r"(local)?(rule|checkpoint) (\S+):")
    FINISHED = re.compile(r"Finished jobid: (\d+) \(Rule: (\S+)\)")
    STEPS = re.compile(r"(\d+) of (\d+) steps \(\d+%\) done")
    COMPLETE_LOG = re.compile(r"Complete log\(s\): (.*)")
    BAR_WIDTH = 30

    def __init__(self, stream: TextIO, tty: bool | None = None, clock=time.monotonic, tick_seconds: float = 1.0):
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.clock = clock
        self.started = clock()
        self.done = 0
        self.total = 0
        self.log: str | None = None
        self._jobs: dict[str, str] = {}  # jobid -> "rule wildcards", from the job's block
        # while inside one: "header" (the run's details), "job" (its inputs, outputs, reason), "stats" (the job
        # count table), all hidden; "error" (an error block), shown
        self._block: str | None = None
        self._job_id: str | None = None
        self._job_rule = ""
        self._finished: str | None = None  # the job whose "N of M steps" line comes next
        self._bar_shown = False
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        if self.tty:  # the elapsed time on the bar moves while a long job runs
            threading.Thread(target=self._tick, args=(tick_seconds,), daemon=True).start()

    def feed(self, line: str) -> None:
        with self._lock:
            self._feed(line.rstrip("\n"))

    def _feed(self, line: str) -> None:
        text = line.strip()
        if self._block == "header" and (line.startswith(" ") or re.fullmatch("=+", text)):
            return
        if line.startswith(" ") and self._block is not None:  # inside a block: an indented field
            field = re.fullmatch(r"    (\w[\w ]*): ?(.*)", line)
            if self._block == "job" and field:  # input, output, reason, ...: hidden; jobid and wildcards kept
                if field.group(1) == "jobid":
                    self._job_id = field.group(2)
                    self._jobs[self._job_id] = self._job_rule
                elif field.group(1) == "wildcards" and self._job_id is not None:
                    self._jobs[self._job_id] = f"{self._job_rule} {field.group(2)}"
                return
            if self._block == "error":
                self._print(line)
                return
        if self._block == "stats" and (re.fullmatch(r"[\w-]+ +\d+|job +count|-+ +-+", text)):
            if text.startswith("total"):
                self.total = max(self.total, int(text.split()[1]))
            return
        self._block = None
        if not text or self.ROUTINE.fullmatch(text):
            return
        if text == "SNAKEMAKE":
            self._block = "header"
        elif text == "Job stats:":
            self._block = "stats"
        elif job := self.JOB.fullmatch(text):
            self._block, self._job_rule, self._job_id = "job", job.group(3), None
        elif text.startswith(("Error in rule ", "Error in group ")):
            self._block = "error"
            self._print(line)
        elif finished := self.FINISHED.fullmatch(text):
            self._finished = self._jobs.get(finished.group(1), finished.group(2))
        elif steps := self.STEPS.fullmatch(text):
            self.done, self.total = int(steps.group(1)), int(steps.group(2))
            self._print(f"isoflop: [{self.done}/{self.total}] {_elapsed(self.clock() - self.started)} "
                        f"{self._finished or 'a job'}")
            self._finished = None
        elif complete := self.COMPLETE_LOG.fullmatch(text):
            self.log = complete.group(1)
        else:
            self._print(line)

    def _print(self, line: str) -> None:
        self._clear_bar()
        self.stream.write(line + "\n")
        self._draw_bar()

    def _clear_bar(self) -> None:
        if self._bar_shown:
            self.stream.write("\r\x1b[K")
            self._bar_shown = False

    def _draw_bar(self) -> None:
        if self.tty and self.total:
            filled = self.BAR_WIDTH * self.done // self.total
            self.stream.write(f"[{'#' * filled}{'.' * (self.BAR_WIDTH - filled)}] {self.done}/{self.total} jobs "
                              f"{_elapsed(self.clock() - self.started)}")
            self._bar_shown = True
        self.stream.flush()

    def _tick(self, seconds: float) -> None:
        while not self._stopped.wait(seconds):
            with self._lock:
                if self._bar_shown:
                    self._clear_bar()
                    self._draw_bar()

    def finish(self, status: int) -> None:
        """The closing line: how many jobs ran in what time, and where Snakemake's complete log is."""
        self._stopped.set()
        with self._lock:
            self._clear_bar()
            outcome = "done" if status == 0 else f"stopped (exit status {status})"
            where = f"; Snakemake's complete log: {self.log}" if self.log else ""
            if self.done or status != 0:
                self.stream.write(f"isoflop: study {outcome}: {self.done}/{self.total} jobs in "
                                  f"{_elapsed(self.clock() - self.started)}{where}\n")
            self.stream.flush()
