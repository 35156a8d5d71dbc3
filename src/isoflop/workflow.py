"""Glue for the Snakemake scripts in `scripts/`: log redirection and small file helpers.

Rules stay thin: each script reads its inputs, calls one library function, and writes its outputs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import traceback
from pathlib import Path


@contextlib.contextmanager
def logged(log_path: str | os.PathLike):
    """Send stdout, stderr (progress bars included) and `logging` to the rule's log file; a failure's
    traceback lands there too before the exception propagates to Snakemake."""
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", buffering=1) as handle:
        root = logging.getLogger()
        handler = logging.StreamHandler(handle)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        try:
            with contextlib.redirect_stdout(handle), contextlib.redirect_stderr(handle):
                yield
        except BaseException:
            traceback.print_exc(file=handle)
            raise
        finally:
            root.removeHandler(handler)


def write_json(path: str | os.PathLike, data) -> None:
    """Write JSON atomically (temp file + rename), so a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=_jsonable) + "\n")
    os.replace(tmp, path)


def read_json(path: str | os.PathLike):
    return json.loads(Path(path).read_text())


def _jsonable(value):
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def progress_enabled() -> bool:
    """Progress bars go to logs unless ISOFLOP_PROGRESS=0 (they are also cheap: mininterval >= 1 s)."""
    return os.environ.get("ISOFLOP_PROGRESS", "1") != "0" and sys.stderr is not None
