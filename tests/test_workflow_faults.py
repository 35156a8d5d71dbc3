"""Faults through the real workflow: a training job killed with SIGKILL resumes bit-identically when
Snakemake reruns it."""

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

    subprocess.run(_command(killed, config, "--unlock"), capture_output=True, check=True, env=env)
    resumed = subprocess.run(_command(killed, config, "results/faults/runs.parquet"), capture_output=True,
                             text=True, env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    result = _result(killed)
    assert reference["resumed"] == 0 and result["resumed"] == 1
    assert result["val_loss"] == reference["val_loss"]
    assert result["val_loss_by_domain"] == reference["val_loss_by_domain"]
    assert result["train_loss"] == reference["train_loss"]
