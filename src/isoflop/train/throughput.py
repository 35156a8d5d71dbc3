"""A run's speed against the hardware: model FLOPs utilisation (MFU) = the model's training FLOPs per second
(``flops_per_token["total"]``, matmuls and attention, times tokens per second) over the device's peak, where
the peak is measured here (a large square matmul in the run's dtype), not read from a data sheet: what this
card, clock and library version deliver. Measured on CUDA only; on the CPU a run reports tokens/s alone.
"""

from __future__ import annotations

import functools
import time

import torch

PEAK_SIZE = 8192  # an n x n x n matmul: large enough to reach a GPU's tensor-core peak
PEAK_REPEATS = 20


@functools.lru_cache(maxsize=4)
def measured_peak_flops(device: str, dtype: str) -> float | None:
    """FLOPs per second of the best of PEAK_REPEATS n^3 matmuls on a CUDA ``device`` (None elsewhere);
    once per process and device."""
    if not device.startswith("cuda"):
        return None
    kind = torch.bfloat16 if dtype == "bfloat16" else torch.float32
    a = torch.randn(PEAK_SIZE, PEAK_SIZE, device=device, dtype=kind)
    b = torch.randn(PEAK_SIZE, PEAK_SIZE, device=device, dtype=kind)
    torch.matmul(a, b)  # warm-up: kernel choice, clocks
    best = float("inf")
    for _ in range(PEAK_REPEATS):
        torch.cuda.synchronize(device)
        start = time.perf_counter()
        torch.matmul(a, b)
        torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * PEAK_SIZE**3 / best


def mfu(tokens_per_second: float | None, flops_per_token: float, peak_flops: float | None, ranks: int = 1) -> float | None:
    """The fraction of ``ranks`` devices' measured peak that the run's model FLOPs used (None off CUDA)."""
    if not tokens_per_second or not peak_flops:
        return None
    return tokens_per_second * flops_per_token / (peak_flops * ranks)
