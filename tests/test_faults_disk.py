"""A full disk: the tiny study's working directory on a small tmpfs that fills up. A job that runs out of space
fails and leaves no partial output that a rerun would trust; once space is freed, the README's command
finishes the study with the same tables as a run that never ran out of space.

Two fills: first too little space for the token files (1 MiB: tokenization writes ~1.8 MiB), then space for
the tokens but not for training and tracking (checkpoints, curves, the MLflow store). The curated corpus is
copied in from the reference run, so the work on the tmpfs starts at tokenization. Where space runs out
differs from run to run (a job's write, or Snakemake recording its own metadata); what must hold is that the
rerun redoes whatever did not finish, and that checkpoints, which a rerun resumes from, are never half-written.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from faults_study import assert_same_tables, run, snakemake_command, study_command

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


def _checkpoints_are_whole(out: Path) -> None:
    """Checkpoints are not Snakemake outputs (a failed job's outputs Snakemake deletes or reruns), so a rerun
    resumes from whatever is there: each one must load, and no temporary file of a failed write is left."""
    import torch

    assert not list(out.rglob("*.tmp")), "a failed write left its temporary file"
    for path in out.rglob("*.pt"):
        torch.load(path, map_location="cpu", weights_only=True)


def _jobs_to_run(workdir: Path, config: Path) -> set[str]:
    """The rules a dry run of the README's command would run."""
    done = run(snakemake_command(workdir, config, "--dry-run"))
    assert done.returncode == 0, done.stderr[-3000:]
    stats = (done.stdout + done.stderr).split("Job stats:", 1)[1].split("\ntotal", 1)[0]
    return {line.split()[0] for line in stats.splitlines()[3:] if line.strip()}


# how running out of space reads: an OSError, numpy's short write, SQLite (the MLflow store)
OUT_OF_SPACE = ("No space left on device", "requested and", "database or disk is full")


def _failed(done: subprocess.CompletedProcess) -> None:
    """The study failed for want of space: in a job (its one line, `No space left on device under <folder>`)
    or in recording Snakemake's own metadata."""
    assert done.returncode != 0, "the study finished on a full disk"
    assert any(message in done.stderr for message in OUT_OF_SPACE), done.stderr[-4000:]


def test_full_disk_fails_cleanly_and_resumes_identically(faults_reference, small_disk):
    config, reference = faults_reference
    workdir = small_disk / "study"
    out, reference_out = workdir / "results" / "faults", reference / "results" / "faults"
    for stage in ("corpus", "curating", "curated", "benchmarks/curate"):  # a benchmark is a job's output too
        shutil.copytree(reference_out / stage, out / stage)
    shutil.copy2(reference_out / "benchmarks" / "corpus.tsv", out / "benchmarks" / "corpus.tsv")
    tokens = _size(reference_out / "tokens")

    _leave_free(small_disk, 1 << 20)
    _failed(run(study_command(workdir, config)))
    _checkpoints_are_whole(out)
    (small_disk / FILLER).unlink()
    assert "tokenize" in _jobs_to_run(workdir, config), "a partial token folder would be trusted"

    _leave_free(small_disk, tokens + (1 << 20))
    _failed(run(study_command(workdir, config)))
    _checkpoints_are_whole(out)
    assert not (out / "laws.json").exists()

    (small_disk / FILLER).unlink()
    resumed = run(study_command(workdir, config))
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert_same_tables(workdir, reference)
