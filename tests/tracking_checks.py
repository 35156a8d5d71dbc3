"""What the tracking tests (and bench/bench_track.py) share: running the smoke study, a synthetic study of any
size written as the workflow writes one, and counting what a store holds against what the files hold."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
ISOFLOP = [sys.executable, "-m", "isoflop.cli"]


def smoke_config(path: Path, study: str = "smoke", **sections) -> Path:
    """tests/smoke.yaml named `study`, with `sections` (section -> {key: value}) merged in, written to `path`."""
    config = {**yaml.safe_load((REPO / "tests" / "smoke.yaml").read_text()), "study": study}
    for section, values in sections.items():
        config.setdefault(section, {}).update(values)
    path.write_text(yaml.safe_dump(config))
    return path


def run_smoke(workdir: Path, configfile: Path, cores: int = 2, env: dict | None = None, background: bool = False):
    """The smoke study through Snakemake in `workdir`: (the finished process, seconds), or the running Popen."""
    command = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--configfile", str(configfile),
               "--cores", str(cores), "--rerun-incomplete"]
    environment = {**os.environ, **(env or {})}
    if background:
        return subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    started = time.perf_counter()
    done = subprocess.run(command, env=environment, capture_output=True, text=True)
    return done, time.perf_counter() - started


def track_sync(configfile: Path, *args: str, cwd: Path, env: dict | None = None):
    return subprocess.run([*ISOFLOP, "track-sync", "--config", str(configfile), *args], cwd=cwd,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True)


def expected_points(run_dir: Path) -> dict[str, int]:
    """Points per metric that a run's files hold: train series per step, validation per evaluation and
    domain, one final value."""
    curve = pd.read_parquet(run_dir / "curve.parquet")
    train, evals = curve[curve["kind"] == "train"], curve[curve["kind"] == "eval"]
    counts = {column: int(train[column].notna().sum()) for column in ("train_loss", "lr", "tokens")}
    for domain, rows in evals.groupby("domain"):
        counts["val_loss" if domain == "*" else f"val_loss.{domain}"] = int(rows["val_loss"].notna().sum())
    counts["final.val_loss"] = 1
    return counts


def store_points(uri: str, experiment: str, metrics_of: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """isoflop run id -> points per metric the store holds, for the metrics of `metrics_of` (same shape, from
    `expected_points`). Fails on a run id logged twice, and counts the kinds of runs logged."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    runs = client.search_runs([experiment_id], max_results=5000)
    train = [run for run in runs if run.data.tags.get("isoflop.kind") == "train"]
    logged = Counter(run.data.tags["isoflop.run_id"] for run in train)
    assert max(logged.values(), default=1) == 1, f"runs logged more than once: {logged.most_common(3)}"
    return {run.data.tags["isoflop.run_id"]: {key: len(client.get_metric_history(run.info.run_id, key))
                                              for key in metrics_of.get(run.data.tags["isoflop.run_id"], {})}
            for run in train}


def kinds(uri: str, experiment: str) -> Counter:
    """How many active runs of each `isoflop.kind` the experiment holds (page by page: a bench's holds 10,000)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    counts, token = Counter(), None
    while True:
        page = client.search_runs([experiment_id], max_results=1000, page_token=token)  # 5,000 took over 15 s
        counts.update(run.data.tags.get("isoflop.kind") for run in page)
        token = page.token
        if not token:
            return counts


def study_points(layout) -> dict[str, dict[str, int]]:
    """`expected_points` of every run the study trained: its runs table's, and the forecast runs that landed
    (plan.json marks them; the fit never sees them, the view shows them)."""
    table = pd.read_parquet(layout.runs_table)
    plan = json.loads(layout.plan.read_text()) if layout.plan.exists() else {"runs": {}}
    forecast = [run_id for run_id, run in sorted(plan.get("runs", {}).items())
                if run.get("forecast") and layout.run_result(run_id).exists()]
    return {run_id: expected_points(layout.run_dir(run_id)) for run_id in [*table["run_id"], *forecast]}


def synthetic_study(results_dir: Path, study: str, n_runs: int, steps: int = 10, uri: str | None = None) -> dict:
    """A finished study of `n_runs` tiny runs (curves of `steps` train points and 2 evaluations over 2
    domains) laid out as the workflow lays one out, without training anything: returns its config."""
    from isoflop.config import validate_config
    from isoflop.layout import StudyLayout

    config = validate_config({"study": study, "results_dir": str(results_dir), "tracking": {"uri": uri}})
    layout = StudyLayout.of(config)
    rng = np.random.default_rng(0)
    runs = {}
    for index in range(n_runs):
        run_id = f"{index:012x}"
        N, budget = 1000 + 10 * index, 1e9 * (1 + index % 5)
        runs[run_id] = {"run_id": run_id, "budget": budget, "N": N, "D": 4096, "C": 6 * N * 4096, "d_model": 16,
                        "n_layers": 1, "n_heads": 1, "params": {"total": N + 100, "nonembed": N, "nonembed_head": N},
                        "flops_convention": "nonembed_head_attention",
                        "spec": {"model": {"d_model": 16}, "train": {"lr": 0.02, "tokens": 4096}}}
        run_dir = layout.run_dir(run_id)
        run_dir.mkdir(parents=True, exist_ok=True)
        loss = 5.0 - np.sort(rng.random(steps))
        (run_dir / "result.json").write_text(json.dumps({
            "status": "ok", "val_loss": float(loss[-1]), "val_loss_by_domain": {"code": float(loss[-1])},
            "started_at": 1.7e9 + index, "ended_at": 1.7e9 + index + 10, "wall_seconds": 10.0}))
        step = np.arange(1, steps + 1)
        train = pd.DataFrame({"kind": "train", "step": step, "tokens": step * 512, "lr": 0.02, "train_loss": loss,
                              "domain": None, "val_loss": np.nan, "val_bpb": np.nan, "seconds": step * 1.0})
        evals = pd.DataFrame({"kind": "eval", "step": [steps // 2, steps] * 2, "tokens": [steps * 256, steps * 512] * 2,
                              "lr": np.nan, "train_loss": np.nan, "domain": ["*", "*", "code", "code"],
                              "val_loss": [loss[steps // 2 - 1], loss[-1]] * 2, "val_bpb": 2.0,
                              "seconds": [steps / 2, steps] * 2})
        pd.concat([train, evals], ignore_index=True).to_parquet(run_dir / "curve.parquet")
    layout.root.mkdir(parents=True, exist_ok=True)
    layout.plan.write_text(json.dumps({"plan_id": "plan00000001", "ids": {"curated": "cur000000001"}, "runs": runs}))
    pd.DataFrame([{"run_id": r["run_id"], "budget": r["budget"], "N": r["N"], "status": "ok"}
                  for r in runs.values()]).to_parquet(layout.runs_table)
    layout.laws.write_text(json.dumps({"chinchilla": {"params": {"E": 1.5}}, "isoflop": None, "settings": {},
                                       "flops_convention": "nonembed_head_attention"}))
    layout.report.write_text(f"# Scaling-law study `{study}`\n\n{n_runs} synthetic runs.\n")
    curated = layout.curated("cur000000001")
    curated.mkdir(parents=True, exist_ok=True)
    (curated / "curation.json").write_text(json.dumps({
        "split": {"train": {"code": {"documents": 9, "bytes": 900}}},
        "ingest": {"by_domain": {"code": {"documents": 10}}}, "curation": {"config": {}, "shards": 1}}))
    return config
