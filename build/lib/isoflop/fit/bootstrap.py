"""Non-parametric bootstrap: resampling weights, parallel refits, percentile intervals.

Resamples are drawn up front from one seeded generator, as multiplicities per point, so a result
depends only on the seed: not on how many workers share the refits or in which order they finish.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np


def resample_counts(
    n_points: int,
    n_resamples: int,
    seed: int,
    *,
    strata: Sequence | np.ndarray | None = None,
    min_distinct: int = 1,
) -> np.ndarray:
    """How often each point appears in each resample: (n_resamples, n_points) integers.

    With `strata`, points are resampled within each stratum (an IsoFLOP budget, a sweep group),
    keeping every stratum's size. A stratum's draw with fewer than `min_distinct` distinct points
    is redrawn, so each resampled group can still be fitted (a parabola needs 3 sizes); the
    intervals are then conditional on that, which is the usual bootstrap for designed experiments.
    """
    rng = np.random.default_rng(seed)
    counts = np.zeros((n_resamples, n_points), dtype=np.int64)
    if strata is None:
        groups = [np.arange(n_points)]
    else:
        labels = np.asarray(strata)
        groups = [np.flatnonzero(labels == label) for label in _unique_in_order(labels)]
    for members in groups:
        size = len(members)
        need = min(min_distinct, size)
        draws = rng.integers(0, size, size=(n_resamples, size))
        for _ in range(1000):
            distinct = _distinct_per_row(draws, size)
            redraw = distinct < need
            if not redraw.any():
                break
            draws[redraw] = rng.integers(0, size, size=(int(redraw.sum()), size))
        counts[:, members] = _counts_per_row(draws, size)
    return counts


def _unique_in_order(labels: np.ndarray) -> list:
    _, first = np.unique(labels, return_index=True)
    return [labels[i] for i in sorted(first)]


def _counts_per_row(draws: np.ndarray, size: int) -> np.ndarray:
    rows = np.repeat(np.arange(draws.shape[0]), draws.shape[1])
    counts = np.zeros((draws.shape[0], size), dtype=np.int64)
    np.add.at(counts, (rows, draws.ravel()), 1)
    return counts


def _distinct_per_row(draws: np.ndarray, size: int) -> np.ndarray:
    return (_counts_per_row(draws, size) > 0).sum(axis=1)


def parallel_rows(
    func: Callable[[np.ndarray], np.ndarray],
    rows: np.ndarray,
    n_jobs: int | None,
    *,
    min_chunk: int = 1000,
) -> np.ndarray:
    """`func` applied to contiguous chunks of `rows`, on up to `n_jobs` threads, stacked in order.

    Threads, not processes: the refits are large numpy operations that release the GIL, and
    threads share the data without pickling it. Chunks smaller than `min_chunk` rows are not
    worth a thread (the per-operation overhead dominates), so small jobs run on one.
    """
    n_jobs = available_cores() if n_jobs is None else max(1, int(n_jobs))
    n_chunks = max(1, min(n_jobs, len(rows) // min_chunk))
    chunks = [chunk for chunk in np.array_split(rows, n_chunks) if len(chunk)]
    if len(chunks) == 1:
        return func(chunks[0])
    with ThreadPoolExecutor(max_workers=len(chunks)) as pool:
        return np.concatenate(list(pool.map(func, chunks)))


def available_cores() -> int:
    """Cores this process may run on (respects CPU affinity, unlike os.cpu_count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def percentile_interval(samples: np.ndarray, level: float = 0.95) -> np.ndarray:
    """Percentile interval over axis 0 of `samples`, ignoring non-finite replicates: (2, ...)."""
    tail = 50.0 * (1.0 - level)
    samples = np.asarray(samples, dtype=float)
    masked = np.where(np.isfinite(samples), samples, np.nan)
    with np.errstate(invalid="ignore"):
        return np.nanpercentile(masked, [tail, 100.0 - tail], axis=0)
