"""Glue for the Snakemake scripts in `scripts/`: log redirection and small file helpers.

Rules stay thin: each script reads its inputs, calls one library function, and writes its outputs.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import sys
import tempfile
import time
import traceback
from pathlib import Path

from isoflop.errors import UserError

log = logging.getLogger(__name__)


@contextlib.contextmanager
def logged(log_path: str | os.PathLike):
    """Send stdout, stderr and `logging` to the rule's log file, between a line naming the stage as it
    starts and one with its time as it ends. Progress bars stay out of it (see `progress_enabled`).

    A failure ends the job with exit status 1 (Snakemake marks it failed) and one line on the job's stderr,
    never a traceback: a `UserError` prints its message (it names the file, key or run) and the log, anything
    else prints its type and message and where its traceback is (the log, which gets every failure's
    traceback; so the local profile does not print failed jobs' logs: `show-failed-logs` is off).
    An interrupt ends it with status 130 and one line.
    """
    user_stderr = sys.stderr
    log_path = Path(log_path)
    stage = _stage_name(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", buffering=1) as handle:
        root = logging.getLogger()
        handler = logging.StreamHandler(handle)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        started = time.perf_counter()
        log.info("%s: started", stage)
        try:
            with contextlib.redirect_stdout(handle), contextlib.redirect_stderr(handle):
                yield
        except Exception as err:
            traceback.print_exc(file=handle)
            log.error("%s: failed after %.1f s", stage, time.perf_counter() - started)
            print(f"isoflop {stage}: error: {_one_line(err, log_path)}", file=user_stderr, flush=True)
            raise SystemExit(1) from None
        except KeyboardInterrupt:
            log.error("%s: interrupted after %.1f s", stage, time.perf_counter() - started)
            print(f"isoflop {stage}: interrupted", file=user_stderr, flush=True)
            raise SystemExit(130) from None
        else:
            log.info("%s: done in %.1f s", stage, time.perf_counter() - started)
        finally:
            root.removeHandler(handler)


# How a full disk reads where no OSError with ENOSPC says so: numpy's short write, SQLite (the MLflow store),
# torch.save's zip writer (`[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598`)
OUT_OF_SPACE = re.compile(r"no space left on device|database or disk is full|\d+ requested and \d+ written|"
                          r"inline_container\.cc.*(unexpected pos|file write failed)", re.IGNORECASE)


def _one_line(err: Exception, log_path: Path) -> str:
    """A failure as one line: a UserError's own message, a full disk as such, or a bug's type and message and
    where to look."""
    if isinstance(err, UserError):
        return f"{' '.join(str(err).split())} (log: {log_path})"
    message = " ".join(str(err).split())[:300]
    if out_of_space(err):
        return (f"No space left on device under {_job_folder(log_path)} ({type(err).__name__}: {message}): free "
                f"space there and run the workflow again; it redoes what did not finish (log: {log_path})")
    return f"{type(err).__name__}: {message} (traceback in {log_path})"


def out_of_space(err: BaseException | None) -> bool:
    """Whether `err`, or an exception it was raised from or while handling, is a full disk."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT) or OUT_OF_SPACE.search(str(err)):
            return True
        err = err.__cause__ or err.__context__
    return False


def _job_folder(log_path: Path) -> Path:
    """The study folder a job writes under: the one holding `logs/` (see `StudyLayout.log`)."""
    return next((folder.parent for folder in log_path.parents if folder.name == "logs"), log_path.parent)


def _stage_name(log_path: Path) -> str:
    """The job a log belongs to, as the layout names its log: `fit`, `train/<run_id>` (see `StudyLayout.log`)."""
    name = log_path.with_suffix("")
    return name.name if name.parent.name == "logs" else f"{name.parent.name}/{name.name}"


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call ``write(file_object)`` on a temporary file beside ``path``, then rename it to ``path``: a reader
    (or a rerun after a kill) never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, data, *, allow_nan: bool = True, sort_keys: bool = False) -> None:
    """Write indented JSON atomically; numpy values become plain numbers."""
    text = json.dumps(data, indent=2, sort_keys=sort_keys, allow_nan=allow_nan, default=_jsonable) + "\n"
    atomic_write(path, lambda handle: handle.write(text.encode()))


def read_json(path: str | os.PathLike):
    return json.loads(Path(path).read_text())


def read_user_json(path: str | os.PathLike, what: str = ""):
    """A JSON file the user named (`what`, if given, says which kind), or a one-line UserError naming `path`
    when it is missing or not JSON."""
    named = f"{what} {path}" if what else str(path)
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{named}: no such file") from None
    except json.JSONDecodeError as err:
        raise UserError(f"{named}: not JSON ({err})") from None


def _jsonable(value):
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def progress_enabled() -> bool:
    """Whether to draw progress bars: only on a terminal, and not with ISOFLOP_PROGRESS=0 (the tests set it).
    Inside `logged`, stderr is the rule's log file, where carriage-return bars would pile up; there a
    training run prints a line per evaluation instead (see `isoflop.train.loop.Trainer.run`)."""
    return os.environ.get("ISOFLOP_PROGRESS", "1") != "0" and sys.stderr.isatty()
