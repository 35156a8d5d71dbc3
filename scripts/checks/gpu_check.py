"""`make gpu-check`: the smoke study trained on the GPU (bfloat16 autocast, torch.compile) against the same
study on the CPU (float32, eager), run by run. Prints one verdict line and writes a small JSON.

    .venv/bin/python scripts/checks/gpu_check.py [--out results/gpu_check.json]

Without a CUDA device it prints why it skipped and exits 0. Exit 1 when a GPU run diverged or its loss is
off. The tolerance: bfloat16 keeps 8 significant bits (0.4% rounding per operation), so after hundreds of
steps a GPU run follows its own trajectory, as another seed would; its final val_loss still lands within
about 1% of the CPU run's. A broken path (autocast on the wrong ops, a compile bug, data on the wrong
device) moves a loss by tens of percent or makes it NaN. So each run must agree within MAX_RELATIVE (5%,
the bound tests/test_train_loop.py's CUDA test uses) and their median within MAX_MEDIAN_RELATIVE (2%).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "tests" / "smoke.yaml"
MAX_RELATIVE = 0.05
MAX_MEDIAN_RELATIVE = 0.02
SAME_RUN = ["budget", "d_model", "replicate", "lr_multiplier"]  # a run's identity apart from device settings


def smoke_losses(workdir: Path, train: dict, data_from: Path | None = None):
    """The smoke study's runs.parquet with `train` settings on top (tracking off); the data stages are
    copied from `data_from` when given (device settings do not change them)."""
    import pandas as pd
    import yaml

    config = yaml.safe_load(SMOKE.read_text())
    config["train"] = {**config["train"], **train}
    config["tracking"] = {"enabled": False}
    workdir.mkdir(parents=True)
    (workdir / "study.yaml").write_text(yaml.safe_dump(config))
    if data_from is not None:
        shutil.copytree(data_from / "results", workdir / "results",
                        ignore=shutil.ignore_patterns("runs", "trunks", "train", "runs.parquet"))
    snakemake = Path(sys.executable).parent / "snakemake"
    command = [str(snakemake), "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--configfile",
               str(workdir / "study.yaml"), "--cores", str(os.cpu_count()), "results/smoke/runs.parquet"]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "ISOFLOP_PROGRESS": "0"})
    if done.returncode:
        sys.exit(f"gpu-check: FAIL: the study with {train} failed:\n{done.stderr[-3000:]}")
    return pd.read_parquet(workdir / "results" / "smoke" / "runs.parquet")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "results" / "gpu_check.json")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)

    import torch

    if not torch.cuda.is_available():
        line = f"gpu-check: SKIPPED: torch {torch.__version__} sees no CUDA device"
        args.out.write_text(json.dumps({"verdict": "skipped", "reason": line}, indent=2) + "\n")
        print(line)
        return 0

    with tempfile.TemporaryDirectory(prefix="isoflop-gpu-check-") as tmp:
        cpu = smoke_losses(Path(tmp) / "cpu", {"device": "cpu"})
        gpu = smoke_losses(Path(tmp) / "gpu", {"device": "cuda", "dtype": "bfloat16", "compile": True},
                           data_from=Path(tmp) / "cpu")
    both = cpu.merge(gpu, on=SAME_RUN, suffixes=("_cpu", "_gpu"), validate="one_to_one")
    both["relative"] = (both["val_loss_gpu"] / both["val_loss_cpu"] - 1).abs()
    ok = (len(both) == len(cpu) == len(gpu) and (both["status_gpu"] == "ok").all()
          and bool((both["relative"] <= MAX_RELATIVE).all()) and both["relative"].median() <= MAX_MEDIAN_RELATIVE)
    report = {
        "verdict": "pass" if ok else "fail",
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "tolerance": {"per_run_relative": MAX_RELATIVE, "median_relative": MAX_MEDIAN_RELATIVE},
        "max_relative": float(both["relative"].max()),
        "median_relative": float(both["relative"].median()),
        "cpu_tokens_per_second": float(cpu["tokens_per_second"].median()),
        "gpu_tokens_per_second": float(gpu["tokens_per_second"].median()),
        "runs": both[SAME_RUN + ["val_loss_cpu", "val_loss_gpu", "relative", "status_gpu"]].to_dict("records"),
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"gpu-check: {report['verdict'].upper()}: {len(both)} runs on {report['device']} (bfloat16, compiled) "
          f"vs CPU: val_loss within {report['max_relative']:.2%} (median {report['median_relative']:.2%}; allowed "
          f"{MAX_RELATIVE:.0%}, median {MAX_MEDIAN_RELATIVE:.0%}); {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
