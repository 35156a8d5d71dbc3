"""The tiny study the fault-injection tests run (tests/test_faults_kill.py, tests/test_faults_disk.py), the
commands they run it with, and what they compare: its tables and its MLflow view."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from conftest import REPO

TINY = {
    "study": "faults",
    "corpus": {"stdlib": {"max_docs_per_domain": 30}, "shards": 4},
    "tokenizer": {"vocab_size": 300, "train_bytes": 300000},
    "model": {"seq_len": 64},
    "plan": {"budgets": [4.0e9, 1.2e10], "ladder": [16, 32], "sizes_per_budget": 2, "tokens_per_param": 20},
    "train": {"batch_size": 8, "warmup_steps": 5, "min_steps": 20, "eval_tokens": 4096, "checkpoint_every": 10},
    "fit": {"bootstrap": 50},
}
# the only fields that may differ between an interrupted and an uninterrupted run: wall-clock measurements
TIMING_COLUMNS = ["train_seconds", "wall_seconds", "tokens_per_second"]  # runs.parquet
CURVE_TIMING = ["seconds"]  # curve.parquet: when each step ran


def job_environment() -> dict:
    return {**os.environ, "ISOFLOP_PROGRESS": "0",
            "PYTHONPATH": os.pathsep.join([str(REPO / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])}


def study_command(workdir: Path, config: Path, *extra: str) -> list[str]:
    """What `make study CONFIG=...` runs, in another working directory."""
    return [sys.executable, "-m", "isoflop.cli", "study", "--config", str(config), "--cores", "2",
            "--directory", str(workdir), *extra]


def snakemake_command(workdir: Path, config: Path, *extra: str) -> list[str]:
    """The README's plain Snakemake line."""
    return [sys.executable, "-m", "snakemake", "--profile", "workflow/profiles/local", "--configfile", str(config),
            "--cores", "2", "--directory", str(workdir), *extra]


def run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=job_environment(), timeout=900)


def reference_study(folder: Path) -> tuple[Path, Path]:
    """The tiny study's config in `folder` and the study run uninterrupted in `folder/reference`."""
    config = folder / "faults.yaml"
    config.write_text(yaml.safe_dump(TINY))
    workdir = folder / "reference"
    done = run(study_command(workdir, config))
    assert done.returncode == 0, done.stderr[-4000:]
    return config, workdir


def _one(pattern: str, out: Path) -> Path:
    [path] = out.glob(pattern)
    return path


def tables(workdir: Path) -> dict:
    """Every table of the study (data frames, timing fields dropped) and the token files' digests."""
    out = workdir / "results" / "faults"
    tokens = _one("tokens/*", out)
    return {
        "runs.parquet": pd.read_parquet(out / "runs.parquet").drop(columns=TIMING_COLUMNS),
        **{str(path.relative_to(out)): pd.read_parquet(path).drop(columns=CURVE_TIMING)
           for path in sorted(out.glob("runs/*/curve.parquet"))},
        "laws.json": json.loads((out / "laws.json").read_text()),
        "curation.json": json.loads(_one("curated/*/curation.json", out).read_text()),
        "meta.json": json.loads((tokens / "meta.json").read_text()),
        "token files": {str(path.relative_to(tokens)): hashlib.sha256(path.read_bytes()).hexdigest()
                        for path in sorted(tokens.rglob("*.bin"))},
    }


def assert_same_tables(workdir: Path, reference: Path) -> None:
    """The study in `workdir` has exactly the reference's tables (NaN equal to NaN; laws.json holds none)."""
    ours, theirs = tables(workdir), tables(reference)
    assert ours.keys() == theirs.keys()
    for name, table in theirs.items():
        if isinstance(table, pd.DataFrame):
            pd.testing.assert_frame_equal(ours[name], table, check_exact=True, obj=name)
        else:
            assert ours[name] == table, name


def mlflow_view(workdir: Path) -> dict:
    """The active MLflow runs by kind, each training run with its status and number of loss points."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{workdir / 'results' / 'faults' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("faults")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    view = {"kinds": sorted(r.data.tags.get("isoflop.kind", "?") for r in runs), "train": {}}
    for r in runs:
        if r.data.tags.get("isoflop.kind") == "train":
            points = len(client.get_metric_history(r.info.run_id, "train_loss"))
            view["train"].setdefault(r.data.tags["isoflop.run_id"], []).append((r.info.status, points))
        else:
            assert r.info.status == "FINISHED", (r.data.tags.get("isoflop.kind"), r.info.status)
    return view
