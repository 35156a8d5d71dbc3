"""Training-step speed: isoflop's step against a minimal nanoGPT-style loop, and model-FLOPs utilisation.

    .venv/bin/python bench/bench_train.py [--threads 2] [--sizes 32,64,128,256] [--steps 3] [--rounds 5] [--compile]

For each d_model (byte-level vocab 256, seq_len 256, or a study config's with --study) it times, in this one process:
  ours      ``Trainer.train_step``: sampler draw, lr set, forward, z-loss-aware loss, backward, clip, fused AdamW
  baseline  a plain loop of the same model and batch size: nanoGPT's get_batch (random offsets into the same
            memmap), F.cross_entropy, backward, clip, default AdamW, zero_grad
  compiled  (with --compile) ours with train.compile=true, timed after its compilation
and prints baseline / ours (>= 1 means ours is at least as fast). Rounds alternate the contenders so that
load from other processes hits all alike; the per-step time is the best round's mean (on a shared machine
the least disturbed round is the closest to the code's own speed).
MFU = achieved model FLOPs per second (flops_per_token["total"], Chinchilla-style, full attention) over the
throughput of a large float32 matmul measured here with the same thread count.
"""

from __future__ import annotations

import argparse
import sys
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from isoflop.train.accounting import flops_per_token
from isoflop.train.loop import Trainer
from isoflop.train.model import ModelConfig, Transformer

VOCAB, SEQ_LEN = 256, 256  # the generic setting; --study takes a study config's vocab, context and batch
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def write_random_tokens(root: Path, n_tokens: int, vocab: int, seq_len: int) -> None:
    rng = np.random.default_rng(0)
    (root / "web").mkdir(parents=True)
    rng.integers(0, vocab, n_tokens, dtype=np.uint16).tofile(root / "web" / "train.bin")
    rng.integers(0, vocab, 4 * seq_len, dtype=np.uint16).tofile(root / "web" / "val.bin")
    domain = {"train_tokens": n_tokens, "val_tokens": 4 * seq_len, "train_bytes": n_tokens, "val_bytes": 4 * seq_len}
    meta = {"vocab_size": vocab, "eos_id": 0, "dtype": "uint16", "domains": {"web": domain}, "fingerprint": "bench"}
    (root / "meta.json").write_text(json.dumps(meta))


def matmul_flops_per_second(threads: int, clock, size: int = 1024, repeats: int = 20) -> float:
    """Best-of float32 matmul throughput at this thread count: the machine's practical peak."""
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    return 2 * size**3 / min(timed(lambda: a @ b, 1, clock) for _ in range(repeats))


def nanogpt_step_fn(cfg: ModelConfig, batch_size: int, train_tokens: np.ndarray):
    """The baseline: what a minimal plain-PyTorch training script does each step."""
    model = Transformer(cfg)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}], lr=1e-3, betas=(0.9, 0.95)
    )

    def step():
        seq_len = cfg.seq_len
        offsets = torch.randint(len(train_tokens) - seq_len, (batch_size,))
        x = torch.stack([torch.from_numpy(train_tokens[i : i + seq_len].astype(np.int64)) for i in offsets])
        y = torch.stack([torch.from_numpy(train_tokens[i + 1 : i + 1 + seq_len].astype(np.int64)) for i in offsets])
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    return step


def timed(step, n: int, clock=time.perf_counter) -> float:
    start = clock()
    for _ in range(n):
        step()
    return (clock() - start) / n


def our_step_fn(d_model: int, batch_size: int, tokens_dir: Path, threads: int, compile: bool, vocab: int, seq_len: int):
    spec = {
        "model": ModelConfig.from_size(d_model, vocab, seq_len).to_dict(),
        "mixture": {"web": 1.0},
        "train": {"tokens": 10**9, "batch_size": batch_size, "lr": 1e-3, "warmup_steps": 10, "seed": 0, "compile": compile},
    }  # fmt: skip
    trainer = Trainer(spec, tokens_dir, tokens_dir / "out", threads=threads, device="cpu", progress=False)
    step_counter = iter(range(10**9))
    return trainer, lambda: trainer.train_step(next(step_counter))


def bench_size(d_model: int, tokens_dir: Path, args) -> dict:
    batch_size = args.batch or (32 if d_model <= 128 else 16)
    trainer, ours = our_step_fn(d_model, batch_size, tokens_dir, args.threads, False, args.vocab, args.seq_len)
    contenders = {"ours": ours, "baseline": nanogpt_step_fn(trainer.run_spec.model, batch_size, trainer.sampler.arrays[0])}
    if args.compile:
        contenders["compiled"] = our_step_fn(d_model, batch_size, tokens_dir, args.threads, True, args.vocab,
                                             args.seq_len)[1]
    for step in contenders.values():
        timed(step, 2)  # warm up allocators and kernels (and compile)
    times = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, step in contenders.items():
            times[name].append(timed(step, args.steps, CLOCKS[args.clock]))
    best = {name: min(t) for name, t in times.items()}
    tokens_per_step = batch_size * args.seq_len
    model_flops = flops_per_token(trainer.run_spec.model)["total"] * tokens_per_step / best["ours"]
    row = {"d_model": d_model, "batch": batch_size, "ours_ms": 1e3 * best["ours"], "baseline_ms": 1e3 * best["baseline"],
           "ratio": best["baseline"] / best["ours"], "tokens_per_s": tokens_per_step / best["ours"], "gflops": model_flops / 1e9}  # fmt: skip
    if args.compile:
        row["compiled_ratio"] = best["baseline"] / best["compiled"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", default="32,64,128,256")
    parser.add_argument("--steps", type=int, default=3, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="also time ours with torch.compile")
    parser.add_argument("--clock", choices=CLOCKS, default="wall",
                        help="cpu: this process's CPU time, robust to other load on a shared machine (threads=1 only)")
    parser.add_argument("--study", metavar="CONFIG",
                        help="use this study config's vocab, seq_len and batch size, and (without --sizes) its "
                             "largest planned model, e.g. config.yaml")
    args = parser.parse_args()
    args.vocab, args.seq_len, args.batch = VOCAB, SEQ_LEN, None
    if args.study:
        from isoflop.config import load_config
        from isoflop.plan import make_plan

        config = load_config(args.study)
        args.vocab, args.seq_len = config["tokenizer"]["vocab_size"], config["model"]["seq_len"]
        args.batch = config["train"]["batch_size"]
        if "--sizes" not in sys.argv:
            args.sizes = str(max(run["d_model"] for run in make_plan(config, "bench")["runs"].values()))
    if args.clock == "cpu" and args.threads != 1:
        parser.error("--clock cpu measures one thread's work; use it with --threads 1")
    with tempfile.TemporaryDirectory() as tmp:
        tokens_dir = Path(tmp)
        write_random_tokens(tokens_dir, 2_000_000, args.vocab, args.seq_len)
        rows = [bench_size(int(d), tokens_dir, args) for d in args.sizes.split(",")]
    peak = matmul_flops_per_second(args.threads, CLOCKS[args.clock])
    print(f"torch {torch.__version__}, threads {args.threads}, {args.clock} clock, matmul peak {peak / 1e9:.1f} GFLOP/s, "
          f"vocab {args.vocab}, seq_len {args.seq_len}")
    print("d_model batch  ours_ms  baseline_ms  baseline/ours  tokens/s  GFLOP/s  MFU" + ("  baseline/compiled" * args.compile))
    for r in rows:
        print(f"{r['d_model']:7d} {r['batch']:5d} {r['ours_ms']:8.1f} {r['baseline_ms']:12.1f} {r['ratio']:14.2f}"
              f" {r['tokens_per_s']:9.0f} {r['gflops']:8.1f} {r['gflops'] * 1e9 / peak:5.0%}"
              + (f" {r['compiled_ratio']:18.2f}" if args.compile else ""))  # fmt: skip


if __name__ == "__main__":
    main()
