"""A full disk: the tiny study's working directory on a small tmpfs that fills up. A job that runs out of space
fails and leaves no partial output that a rerun would trust; once space is freed, the README's command
finishes the study with the same tables as a run that never ran out of space.

Two fills: first too little space for the token files (1 MiB: tokenization writes ~1.8 MiB), then space for
the tokens but not for training and tracking (checkpoints, curves, the MLflow store). The curated corpus is
copied in from the reference run, so the work on the tmpfs starts at tokenization.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from faults_study import run, study_command, tables

pytestmark = [pytest.mark.faults, pytest.mark.slow]

DISK_MB = 32
FILLER = "filler.bin"


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}M", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _leave_free(mount: Path, free_bytes: int) -> None:
    """Resize the filler file so that `free_bytes` of the tmpfs stay free."""
    filler = mount / FILLER
    filler.unlink(missing_ok=True)
    stat = os.statvfs(mount)
    size = stat.f_bavail * stat.f_frsize - free_bytes
    with open(filler, "wb") as handle:
        handle.write(b"\0" * size)


def _size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def _every_file_is_whole(out: Path) -> None:
    """Each parquet, JSON and torch file under the study reads back: nothing half-written is left to trust."""
    import json

    import torch

    for path in out.rglob("*"):
        if path.name.endswith(".tmp"):
            raise AssertionError(f"a temporary file was left behind: {path}")
        if path.suffix == ".parquet":
            pd.read_parquet(path)
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".pt":
            torch.load(path, map_location="cpu", weights_only=True)


def _failed(done: subprocess.CompletedProcess) -> str:
    """The study's stderr, after checking that it failed for want of space."""
    assert done.returncode != 0, "the study finished on a full disk"
    assert "No space left on device" in done.stderr, done.stderr[-4000:]
    return done.stderr


def test_full_disk_fails_cleanly_and_resumes_identically(faults_reference, small_disk):
    config, reference = faults_reference
    workdir = small_disk / "study"
    out, reference_out = workdir / "results" / "faults", reference / "results" / "faults"
    for stage in ("corpus", "curating", "curated"):
        shutil.copytree(reference_out / stage, out / stage)
    tokens = _size(reference_out / "tokens")

    _leave_free(small_disk, 1 << 20)
    assert "Error in rule tokenize" in _failed(run(study_command(workdir, config)))
    assert not any(out.glob("tokens/*")), "a failed tokenization left a token folder behind"
    _every_file_is_whole(out)

    _leave_free(small_disk, tokens + (1 << 20))
    _failed(run(study_command(workdir, config)))
    assert not (out / "laws.json").exists()
    _every_file_is_whole(out)

    (small_disk / FILLER).unlink()
    resumed = run(study_command(workdir, config))
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert tables(workdir) == tables(reference)
