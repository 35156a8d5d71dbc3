"""Run files that prove themselves: result.json records a hash of its own payload and of the curve written
before it, and the runs table reads every run through `read_results`, which refuses a file that does not
parse, no longer matches its hashes, or holds values no training run can produce.

A file that was damaged after training (edited, truncated, its curve replaced) is moved aside to
`result.json.rejected`, so its run is unfinished again and the workflow's next run retrains exactly that run
(Snakemake reruns a job whose output is missing); the failure is one line naming each file. A file whose hashes
match but whose values are impossible is what training wrote: retraining would write it again, so it is
refused in place, naming the run. A result.json written before isoflop recorded hashes carries none: its
values are still checked.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

from isoflop.errors import UserError
from isoflop.workflow import _jsonable, write_json

SEAL = "integrity"  # result.json's key holding the hashes: {"payload_sha256": ..., "files": {name: sha256}}
SEALED_FILES = ("curve.parquet",)  # written before result.json in the run's folder (see train/loop.py)
REJECTED_SUFFIX = ".rejected"
# A model's loss in nats per token can sit above ln(vocab) (a confident wrong model), but a run that ends
# more than this far above it has not trained; below 0 or non-finite is impossible for a finished run
LOSS_MARGIN_NATS = 1.0
# the overall loss is the token-weighted mean of the per-domain losses: between them, up to rounding
MEAN_TOLERANCE = 1e-6


class RejectedRunFile(Exception):
    """A run's file that the runs table cannot use; `retrain`: whether moving it aside makes the next workflow
    run retrain the run (the file was damaged after training), or it is what training wrote."""

    def __init__(self, path: Path, reason: str, *, retrain: bool):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason, self.retrain = path, reason, retrain


def _payload_sha256(result: dict) -> str:
    """The hash of a result's fields other than the seal, in one canonical JSON form (sorted keys, no spaces):
    a number rewritten, a key added or removed changes it; the file's indentation does not."""
    payload = {key: value for key, value in result.items() if key != SEAL}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_result(out_dir: str | os.PathLike, result: dict) -> dict:
    """Write `out_dir/result.json` (atomically, last of the run's files) sealed with the hash of its payload
    and of each of `SEALED_FILES` present in `out_dir`; returns what was written."""
    out_dir = Path(out_dir)
    plain = json.loads(json.dumps(result, allow_nan=False, default=_jsonable))  # numpy values as the file holds them
    plain.pop(SEAL, None)
    files = {name: _file_sha256(out_dir / name) for name in SEALED_FILES if (out_dir / name).exists()}
    sealed = {**plain, SEAL: {"payload_sha256": _payload_sha256(plain), "files": files}}
    write_json(out_dir / "result.json", sealed, allow_nan=False, sort_keys=True)
    return sealed


def check_result(path: str | os.PathLike, vocab_size: int | None = None) -> dict:
    """The result in `path`, or `RejectedRunFile` saying why not: it does not parse, its payload or a sealed
    file no longer matches the hash recorded when it was written, or its losses are impossible (outside
    [0, ln vocab_size + LOSS_MARGIN_NATS], or an overall loss outside its per-domain losses)."""
    path = Path(path)
    try:
        result = json.loads(path.read_bytes())
    except (OSError, ValueError) as err:  # a truncated file, bytes that are not UTF-8 or not JSON
        raise RejectedRunFile(path, f"not readable JSON ({type(err).__name__}: {str(err)[:120]})",
                              retrain=True) from None
    if not isinstance(result, dict):
        raise RejectedRunFile(path, "not a JSON object", retrain=True)
    seal = result.get(SEAL)
    if seal is not None:
        if not isinstance(seal, dict) or seal.get("payload_sha256") != _payload_sha256(result):
            raise RejectedRunFile(path, "its contents no longer match the hash recorded when training wrote it "
                                  "(edited afterwards?)", retrain=True)
        for name, digest in (seal.get("files") or {}).items():
            sealed = path.parent / name
            if not sealed.exists() or _file_sha256(sealed) != digest:
                raise RejectedRunFile(path, f"its {name} is missing or no longer the one training wrote",
                                      retrain=True)
    problem = _impossible(result, vocab_size)
    if problem:
        raise RejectedRunFile(path, problem, retrain=seal is None)
    return result


def _impossible(result: dict, vocab_size: int | None) -> str | None:
    """Why a finished run's losses cannot be what training produced, or None."""
    if result.get("status") != "ok":
        return None
    ceiling = math.log(vocab_size) + LOSS_MARGIN_NATS if vocab_size else math.inf
    by_domain = result.get("val_loss_by_domain") or {}
    named = {"val_loss": result.get("val_loss"), **{f"val_loss_by_domain.{d}": v for d, v in by_domain.items()}}
    for key, value in named.items():
        if not isinstance(value, (int, float)) or not 0.0 <= value <= ceiling:
            bound = f"[0, ln {vocab_size} + {LOSS_MARGIN_NATS:g}]" if vocab_size else "[0, inf)"
            return f"{key} = {value!r} is outside {bound} nats for a finished run"
    if by_domain:
        low, high = min(by_domain.values()), max(by_domain.values())
        slack = MEAN_TOLERANCE * max(1.0, high)
        if not low - slack <= result["val_loss"] <= high + slack:
            return (f"val_loss = {result['val_loss']!r} is not a mean of its per-domain losses "
                    f"({low:.4g} to {high:.4g})")
    return None


def read_results(result_paths, vocab_sizes: dict[str, int] | None = None) -> dict[str, dict]:
    """run id (its folder's name) -> result for every path, each through `check_result` with its run's vocab
    size (`vocab_sizes`, by run id). Every file damaged after training is moved aside (so the next workflow run
    retrains exactly those runs), then one `UserError` line names each refused file and the fix."""
    vocab_sizes = vocab_sizes or {}
    results, rejected = {}, []
    for path in map(Path, result_paths):
        try:
            results[path.parent.name] = check_result(path, vocab_sizes.get(path.parent.name))
        except RejectedRunFile as err:
            rejected.append(err)
    if not rejected:
        return results
    for refused in rejected:
        if refused.retrain:
            os.replace(refused.path, refused.path.with_name(refused.path.name + REJECTED_SUFFIX))
    retrained = [f"{refused.path} ({refused.reason})" for refused in rejected if refused.retrain]
    kept = [f"{refused.path} ({refused.reason})" for refused in rejected if not refused.retrain]
    parts = []
    if retrained:
        parts.append(f"{len(retrained)} run file(s) damaged after training, moved aside to "
                     f"*{REJECTED_SUFFIX}: {'; '.join(retrained)}; run the workflow again: it retrains exactly "
                     f"{'that run' if len(retrained) == 1 else 'those runs'}")
    if kept:
        parts.append(f"{len(kept)} run file(s) hold losses no training can produce though their hashes match "
                     f"(a training bug: report it; delete the run's folder to retrain it): {'; '.join(kept)}")
    raise UserError("; ".join(parts))
