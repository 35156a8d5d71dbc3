"""Learning-rate transfer across width: the best lr at three widths under the standard parametrisation and muP.

    .venv/bin/python bench/bench_mup.py [--widths 32,64,128] [--steps 200] [--lrs 0.0025,...,0.16] 2>/dev/null

For each width (2 layers at every width, heads 16 wide, so only width varies) and each parametrisation, it
trains one run per learning rate (the Trainer of the workflow, `train.parametrization` as a spec key; muP's
base width is the smallest width) on a synthetic order-2 Markov chain over 32 symbols, and takes the final
validation loss. The best lr of a sweep is the vertex of a parabola in log lr through the grid's minimum and
its two neighbours. It prints the loss table and, per parametrisation, the best lr per width and the ratio of
the largest to the smallest best lr across the widths: muP should move it by at most 2x over a 4x width range,
the standard parametrisation (one lr for every width) by more. Each run's progress lines go to stderr.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from isoflop.corpus.synthetic import ALPHABET, markov_documents
from isoflop.train.loop import train_run
from isoflop.train.model import ModelConfig

ALPHABET_SIZE, ORDER, SEQ_LEN, BATCH = 32, 2, 64, 16
DOC_CHARS = 1024
EVAL_TOKENS = 8192


def write_markov_tokens(root: Path, train_tokens: int, val_tokens: int) -> None:
    """A token folder (one domain) whose tokens are the symbols of the seeded Markov chain; the validation
    split is the documents after the training ones."""
    lookup = np.zeros(256, dtype=np.uint16)
    lookup[np.frombuffer(ALPHABET[:ALPHABET_SIZE].encode(), dtype=np.uint8)] = np.arange(ALPHABET_SIZE)
    n_docs = (train_tokens + val_tokens) // DOC_CHARS + 2
    text = "".join(markov_documents(n_docs, DOC_CHARS, ALPHABET_SIZE, ORDER, seed=7))
    tokens = lookup[np.frombuffer(text.encode(), dtype=np.uint8)]
    (root / "markov").mkdir(parents=True)
    tokens[:train_tokens].tofile(root / "markov" / "train.bin")
    tokens[-val_tokens:].tofile(root / "markov" / "val.bin")
    domain = {"train_tokens": train_tokens, "val_tokens": val_tokens, "train_bytes": train_tokens,
              "val_bytes": val_tokens}
    meta = {"vocab_size": ALPHABET_SIZE, "eos_id": 0, "dtype": "uint16", "domains": {"markov": domain},
            "fingerprint": "bench-mup"}
    (root / "meta.json").write_text(json.dumps(meta))


def run_spec(width: int, lr: float, steps: int, base: int | None) -> dict:
    model = ModelConfig(d_model=width, n_layers=2, n_heads=width // 16, vocab_size=ALPHABET_SIZE, seq_len=SEQ_LEN)
    train = {"tokens": steps * BATCH * SEQ_LEN, "batch_size": BATCH, "lr": lr, "warmup_steps": steps // 10,
             "seed": 0, "schedule": "cosine", "eval_tokens": EVAL_TOKENS}
    if base is not None:
        train.update(parametrization="mup", mup_base_d_model=base)
    return {"model": model.to_dict(), "mixture": {"markov": 1.0}, "train": train}


def best_lr(lrs: np.ndarray, losses: np.ndarray) -> tuple[float, bool]:
    """The vertex of the parabola in log lr through the lowest loss and its neighbours, and whether the grid
    brackets it (a minimum at the grid's edge is reported as that edge)."""
    i = int(np.nanargmin(losses))
    if i in (0, len(lrs) - 1) or not np.isfinite(losses[i - 1 : i + 2]).all():
        return float(lrs[i]), False
    x, y = np.log(lrs[i - 1 : i + 2]), losses[i - 1 : i + 2]
    a, b, _ = np.polyfit(x, y, 2)
    return float(np.exp(-b / (2 * a))), True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", default="32,64,128")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--lrs", default="0.0025,0.005,0.01,0.02,0.04,0.08,0.16")
    args = parser.parse_args()
    widths = [int(w) for w in args.widths.split(",")]
    lrs = np.array([float(v) for v in args.lrs.split(",")])
    started = time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_markov_tokens(root / "tokens", args.steps * BATCH * SEQ_LEN + SEQ_LEN + 1, EVAL_TOKENS + SEQ_LEN + 1)
        summary = {}
        for name, base in (("standard", None), ("mup", widths[0])):
            print(f"\n{name}: final val loss (nats/token) per lr")
            print("width " + " ".join(f"{lr:>8.5g}" for lr in lrs) + "   best lr")
            best = {}
            for width in widths:
                losses = np.array([
                    train_run(run_spec(width, lr, args.steps, base), root / "tokens", root / f"{name}-{width}-{lr}",
                              threads=1, device="cpu", progress=False, own_process=False).get("val_loss", np.nan)
                    for lr in lrs
                ])
                best[width], bracketed = best_lr(lrs, losses)
                cells = " ".join(f"{loss:8.4f}" for loss in losses)
                print(f"{width:>5} {cells}   {best[width]:.4g}{'' if bracketed else ' (grid edge)'}", flush=True)
            ratio = max(best.values()) / min(best.values())
            summary[name] = ratio
            print(f"{name}: best lr moves by {ratio:.2f}x over widths {widths[0]}-{widths[-1]}")
    print(f"\nratio of best lrs across a {widths[-1] // widths[0]}x width range: standard {summary['standard']:.2f}x, "
          f"muP {summary['mup']:.2f}x; {time.process_time() - started:.0f} CPU-seconds")


if __name__ == "__main__":
    main()
