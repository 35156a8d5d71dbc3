"""Reading the tokenizer stage's output: meta.json, training batches, evaluation windows.

Layout (written by ``isoflop.tokens``): ``TOKENS_DIR/meta.json`` and ``TOKENS_DIR/<domain>/{train,val}.bin``,
flat uint16 token ids with every document followed by ``eos_id``.

Data order is a pure function of (data seed, step): batch ``step`` is drawn from a PCG64 generator seeded
with ``SeedSequence(seed, spawn_key=(step,))``, so resuming or branching at any step replays exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from isoflop.errors import UserError
from isoflop.tokens import read_meta


def open_tokens(tokens_dir: str | Path, domain: str, split: str) -> np.ndarray:
    """The token ids of one domain's split, memory-mapped."""
    path = Path(tokens_dir) / domain / f"{split}.bin"
    if not path.exists():
        raise UserError(f"{path}: not found (domain {domain!r}, split {split!r})")
    return np.memmap(path, dtype=np.uint16, mode="r")


class BatchSampler:
    """Draws batch ``step`` of a mixture: per sequence, a domain by mixture weight, then a uniformly
    random window of seq_len + 1 tokens in that domain's train split."""

    def __init__(self, tokens_dir: str | Path, mixture: dict[str, float], seq_len: int, batch_size: int, seed: int):
        meta = read_meta(tokens_dir)
        absent = sorted(set(mixture) - set(meta["domains"]))
        if absent:
            raise UserError(f"mixture names domains {absent} that {tokens_dir}/meta.json does not have")
        self.domains = [name for name, weight in mixture.items() if weight > 0]
        weights = np.array([mixture[name] for name in self.domains], dtype=np.float64)
        self.cumulative = np.cumsum(weights / weights.sum())
        self.cumulative[-1] = 1.0
        self.arrays = [open_tokens(tokens_dir, name, "train") for name in self.domains]
        for name, array in zip(self.domains, self.arrays):
            if len(array) < seq_len + 1:
                raise UserError(f"domain {name!r}: train split has {len(array)} tokens, fewer than seq_len + 1")
        # Number of valid window starts per domain.
        self.starts = np.array([len(a) - seq_len for a in self.arrays], dtype=np.float64)
        self.window = np.arange(seq_len + 1)
        self.batch_size = batch_size
        self.seed = seed

    def _groups(self, step: int) -> tuple[np.random.Generator, np.ndarray]:
        """The generator of batch ``step`` and the domain index of each of its sequences."""
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(self.seed, spawn_key=(step,))))
        return rng, np.searchsorted(self.cumulative, rng.random(self.batch_size), side="right")

    def batch(self, step: int) -> torch.Tensor:
        """Token ids of shape (batch_size, seq_len + 1), int64: inputs are [:, :-1], targets [:, 1:]."""
        rng, which = self._groups(step)
        offsets = (rng.random(self.batch_size) * self.starts[which]).astype(np.int64)
        out = np.empty((self.batch_size, len(self.window)), dtype=np.int64)
        for index, array in enumerate(self.arrays):
            rows = np.flatnonzero(which == index)
            if len(rows):
                out[rows] = array[offsets[rows, None] + self.window]
        return torch.from_numpy(out)

    def tokens_drawn(self, steps: int) -> dict[str, int]:
        """Training tokens (targets) drawn from each domain by batches 0..steps-1: replayed from (seed, step),
        so a resumed or branched run counts exactly what it trained on."""
        counts = np.zeros(len(self.domains), dtype=np.int64)
        for step in range(steps):
            counts += np.bincount(self._groups(step)[1], minlength=len(self.domains))
        per_sequence = len(self.window) - 1
        return {name: int(count) * per_sequence for name, count in zip(self.domains, counts)}


def eval_windows(tokens_dir: str | Path, domain: str, seq_len: int, max_tokens: int) -> torch.Tensor:
    """The first ``max_tokens`` val tokens of a domain as non-overlapping windows of seq_len targets:
    shape (n_windows, seq_len + 1), int64 (each window shares its last token with the next one's first)."""
    val = open_tokens(tokens_dir, domain, "val")
    n_windows = (min(max_tokens, len(val) - 1)) // seq_len
    if n_windows < 1:
        raise UserError(
            f"domain {domain!r}: need at least seq_len + 1 = {seq_len + 1} val tokens for evaluation "
            f"(val split has {len(val)}, train.eval_tokens={max_tokens})"
        )
    starts = np.arange(n_windows)[:, None] * seq_len
    return torch.from_numpy(val[starts + np.arange(seq_len + 1)].astype(np.int64))
