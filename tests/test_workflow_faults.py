"""Faults through the real workflow: a training job killed with SIGKILL resumes bit-identically when the
README's command reruns it (clearing the lock Snakemake left behind); Snakemake's own maintenance commands
need no `--cores`. Whole-workflow kills at every stage are in tests/test_faults_kill.py."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from conftest import REPO

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")

ONE_RUN = {
    "study": "faults",
    "corpus": {"stdlib": {"max_docs_per_domain": 30}},
    "tokenizer": {"vocab_size": 300, "train_bytes": 300000},
    "model": {"seq_len": 64},
    "plan": {"budgets": [2.5e10], "ladder": [32], "sizes_per_budget": 1},
    "train": {"batch_size": 8, "warmup_steps": 10, "min_steps": 20, "eval_tokens": 4096, "checkpoint_every": 25,
              "schedule": "cosine"},
    "tracking": {"enabled": False},
}


def _command(workdir: Path, configfile: Path, *extra: str) -> list[str]:
    return [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--configfile", str(configfile),
            "--cores", "1", "--rerun-incomplete", *extra]


def _study(workdir: Path, configfile: Path, *extra: str) -> list[str]:
    """What `make study` runs (`isoflop study`), in another working directory."""
    return [sys.executable, "-m", "isoflop.cli", "study", "--config", str(configfile), "--cores", "1",
            "--directory", str(workdir), *extra]


def _result(workdir: Path) -> dict:
    [path] = (workdir / "results" / "faults" / "runs").glob("*/result.json")
    return json.loads(path.read_text())


def test_sigkilled_training_job_resumes_bit_identically(tmp_path):
    config = tmp_path / "faults.yaml"
    config.write_text(yaml.safe_dump(ONE_RUN))
    env = {**os.environ, "ISOFLOP_PROGRESS": "0"}

    clean = tmp_path / "clean"
    done = subprocess.run(_command(clean, config, "results/faults/runs.parquet"), capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    reference = _result(clean)

    killed = tmp_path / "killed"  # the same study, its data stages copied rather than recomputed
    shutil.copytree(clean / "results", killed / "results", ignore=shutil.ignore_patterns("runs", "train", "runs.parquet"))
    job = subprocess.Popen(_command(killed, config, "results/faults/runs.parquet"), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    deadline = time.time() + 300
    while not list((killed / "results" / "faults" / "runs").glob("*/ckpt.pt")):
        assert job.poll() is None, "the study finished before a checkpoint was written"
        assert time.time() < deadline, "no checkpoint within 5 minutes"
        time.sleep(0.2)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    [run_dir] = (killed / "results" / "faults" / "runs").iterdir()
    assert not (run_dir / "result.json").exists()

    assert any((killed / ".snakemake" / "locks").iterdir())  # the lock a killed Snakemake leaves behind

    resumed = subprocess.run(_study(killed, config, "results/faults/runs.parquet"), capture_output=True,
                             text=True, env=env, cwd=REPO)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "isoflop: removed the Snakemake lock of a run that was killed" in resumed.stderr
    result = _result(killed)
    assert reference["resumed"] == 0 and result["resumed"] == 1
    assert result["val_loss"] == reference["val_loss"]
    assert result["val_loss_by_domain"] == reference["val_loss_by_domain"]
    assert result["train_loss"] == reference["train_loss"]


def test_unlock_dag_and_lint_need_no_cores(tmp_path):
    config = tmp_path / "faults.yaml"
    config.write_text(yaml.safe_dump(ONE_RUN))
    for flags in (["--unlock"], ["--dag"], ["--lint"]):
        done = subprocess.run([SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "--configfile",
                               str(config), *flags], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, (flags, done.stderr[-3000:])
        assert "cores" not in done.stderr, done.stderr[-3000:]
    assert done.stderr.strip().endswith("Congratulations, your workflow is in a good condition!")


def test_study_outside_a_checkout_is_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "isoflop.cli", "study"], capture_output=True, text=True,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"isoflop study: error: no Snakefile and workflow/profiles/local/ in {tmp_path}: run `isoflop study` in "
        "the isoflop checkout"]
