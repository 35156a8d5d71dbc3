"""`make gpu-check`: the device check. Four parts, each a line and a section of one JSON:

1. the smoke study trained on the GPU (bfloat16 autocast, torch.compile) against the same study on the CPU
   (float32, eager), run by run (the verdict: pass or fail);
2. a two-rung mini ladder (about 20M and 170M parameters, the model family's own shapes) in bfloat16,
   compiled, with each rung's tokens/s and MFU against the GPU's measured matmul peak (target: >= 40% on the
   170M rung on an H100-class GPU);
3. PACKED tiny runs (the smoke study's size) sharing one GPU at once against the same runs one after another
   (target: >= 3x the throughput);
4. with two or more GPUs, the larger rung on two data-parallel ranks (train.devices: 2) against one.

Parts 2-4 are measurements: they print and record numbers, and fail the check only if a run fails.

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
RUNGS = (384, 768)  # d_model of the mini ladder: ~21M and ~170M parameters (n_layers = d_model / 32)
RUNG_STEPS, RUNG_BATCH, RUNG_SEQ = 60, 16, 1024
PACKED = 8  # tiny runs sharing the GPU at once


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


def synthetic_tokens(root: Path, vocab: int = 50304, tokens: int = 20_000_000) -> Path:
    """A token folder of uniform random ids (speed does not depend on what the tokens say)."""
    import numpy as np

    rng = np.random.default_rng(0)
    (root / "web").mkdir(parents=True)
    for split, size in (("train", tokens), ("val", 200_000)):
        rng.integers(0, vocab, size, dtype=np.uint16).tofile(root / "web" / f"{split}.bin")
    meta = {"vocab_size": vocab, "eos_id": 0, "dtype": "uint16", "fingerprint": "synthetic",
            "domains": {"web": {"train_tokens": tokens, "val_tokens": 200_000, "train_bytes": 4 * tokens,
                                "val_bytes": 800_000}}}
    (root / "meta.json").write_text(json.dumps(meta))
    return root


def rung_spec(d_model: int, vocab: int, steps: int = RUNG_STEPS, batch: int = RUNG_BATCH, seq: int = RUNG_SEQ) -> dict:
    from isoflop.train.model import ModelConfig

    model = ModelConfig.from_size(d_model, vocab_size=vocab, seq_len=seq).to_dict()
    return {"model": model, "mixture": {"web": 1.0},
            "train": {"tokens": steps * batch * seq, "batch_size": batch, "lr": 3e-4, "warmup_steps": 10, "seed": 0,
                      "eval_tokens": 8 * seq, "dtype": "bfloat16", "compile": True, "log_every": 20}}


def mini_ladder(tokens: Path, work: Path) -> list[dict]:
    """Each rung's params, tokens/s and MFU (bfloat16, compiled, one GPU)."""
    from isoflop.train.loop import train_run

    rungs = []
    for d_model in RUNGS:
        result = train_run(rung_spec(d_model, 50304), tokens, work / f"rung-{d_model}", device="cuda", progress=False)
        rungs.append({"d_model": d_model, "params": result["param_counts"]["total"], "status": result["status"],
                      "tokens_per_second": result["tokens_per_second"], "mfu": result["mfu"],
                      "peak_flops": result["peak_flops_per_device"]})
    return rungs


def packing(tokens: Path, work: Path) -> dict:
    """PACKED tiny runs as separate processes sharing the GPU at once, against the same runs one at a time:
    tokens per wall-clock second of each (process starts included, as a study pays them)."""
    import time

    spec = rung_spec(64, 50304, steps=300, batch=16, seq=128)
    spec["train"].update(compile=False, lr=1e-3)
    code = ("import json, sys; from isoflop.train.loop import train_run; "
            "train_run(json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], device='cuda', progress=False)")

    def launch(name: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", code, json.dumps(spec), str(tokens), str(work / name)])

    start = time.perf_counter()
    for index in range(PACKED):
        if launch(f"alone-{index}").wait():
            sys.exit("gpu-check: FAIL: a tiny run failed")
    alone = time.perf_counter() - start
    start = time.perf_counter()
    if any(process.wait() for process in [launch(f"packed-{index}") for index in range(PACKED)]):
        sys.exit("gpu-check: FAIL: a packed tiny run failed")
    packed = time.perf_counter() - start
    total = PACKED * spec["train"]["tokens"]
    return {"runs": PACKED, "one_at_a_time_tokens_per_second": total / alone,
            "packed_tokens_per_second": total / packed, "gain": alone / packed}


def data_parallel(tokens: Path, work: Path) -> dict | None:
    """The larger rung on two ranks (DDP, one GPU each) against one GPU, when there are two."""
    import torch

    from isoflop.train.distributed import Parallel
    from isoflop.train.loop import train_run

    if torch.cuda.device_count() < 2:
        return None
    spec = rung_spec(RUNGS[-1], 50304)
    one = train_run(spec, tokens, work / "dp-1", device="cuda", progress=False)
    two = train_run(spec, tokens, work / "dp-2", device="cuda", progress=False, parallel=Parallel(devices=2))
    return {"d_model": RUNGS[-1], "one_gpu_tokens_per_second": one["tokens_per_second"],
            "two_gpus_tokens_per_second": two["tokens_per_second"], "speedup": two["tokens_per_second"] / one["tokens_per_second"],
            "two_gpus_mfu": two["mfu"], "val_loss_relative": abs(two["val_loss"] / one["val_loss"] - 1)}


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
        tokens = synthetic_tokens(Path(tmp) / "tokens")
        ladder = mini_ladder(tokens, Path(tmp))
        packed = packing(tokens, Path(tmp))
        parallel = data_parallel(tokens, Path(tmp))
    both = cpu.merge(gpu, on=SAME_RUN, suffixes=("_cpu", "_gpu"), validate="one_to_one")
    both["relative"] = (both["val_loss_gpu"] / both["val_loss_cpu"] - 1).abs()
    ok = (len(both) == len(cpu) == len(gpu) and (both["status_gpu"] == "ok").all()
          and all(rung["status"] == "ok" for rung in ladder)
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
        "mini_ladder": ladder,
        "packing": packed,
        "data_parallel": parallel,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"gpu-check: {report['verdict'].upper()}: {len(both)} runs on {report['device']} (bfloat16, compiled) "
          f"vs CPU: val_loss within {report['max_relative']:.2%} (median {report['median_relative']:.2%}; allowed "
          f"{MAX_RELATIVE:.0%}, median {MAX_MEDIAN_RELATIVE:.0%}); {args.out}")
    for rung in ladder:
        print(f"gpu-check: rung d_model {rung['d_model']} ({rung['params'] / 1e6:.0f}M params): "
              f"{rung['tokens_per_second']:,.0f} tokens/s, MFU {rung['mfu']:.1%} of a measured "
              f"{rung['peak_flops'] / 1e12:.0f} TFLOP/s bfloat16 matmul peak")
    print(f"gpu-check: {PACKED} tiny runs packed on one GPU: {packed['gain']:.1f}x the throughput of one at a time")
    if parallel is not None:
        print(f"gpu-check: two GPUs (train.devices: 2) on the {RUNGS[-1]} rung: {parallel['speedup']:.2f}x one GPU")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
