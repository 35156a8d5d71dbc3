"""The training-curve envelope (Hoffmann et al. 2022, Approach 1).

Every run's loss curve is a set of (FLOPs so far, loss) points. At each compute C on a log grid,
the envelope is the lowest loss any run reached by C; the size of that run is N*(C), and a line
in log space gives N* = k_N C^a. Neighbouring grid points often share a winning run, so OLS
intervals over the grid would be far too narrow: intervals come from resampling whole runs.
"""

from __future__ import annotations

import numpy as np

from isoflop.errors import UserError
from isoflop.fit.bootstrap import percentile_interval
from isoflop.fit.checks import positive_column, same_length, to_jsonable
from isoflop.fit.regression import masked_least_squares


def fit_envelope(run, N, C, loss, *, n_grid: int = 100, bootstrap: int = 0, seed: int = 0) -> dict:
    """Fit N*(C) = k_N C^a to the minimum-loss envelope of loss curves.

    `run` labels the curve each point belongs to; `N` is that run's size, `C` the FLOPs it has
    used at the point, `loss` the loss there. Returns `params` (a, k_N), `ci95` (with
    `bootstrap` > 0: resamples of runs, `seed`), and the `frontier` table (C, N, loss, run).
    """
    N, C, loss = positive_column("N", N), positive_column("C", C), positive_column("loss", loss)
    run = np.asarray(run)
    same_length(run=run, N=N, C=C, loss=loss)
    names = np.unique(run)
    if len(np.unique(N)) < 2:
        raise UserError("the envelope needs runs of at least 2 sizes")
    curves = [_curve(C[run == name], loss[run == name]) for name in names]
    sizes = np.array([N[run == name][0] for name in names])
    grid = _compute_grid(curves, n_grid)
    losses = np.stack([np.interp(np.log(grid), lc, ll, left=np.nan, right=np.nan) for lc, ll in curves])
    frontier = _frontier(losses, np.ones(len(names), dtype=bool))
    covered = frontier >= 0
    if len(np.unique(sizes[frontier[covered]])) < 2:
        raise UserError(f"one size (N = {sizes[frontier[covered]][0]:.4g}) has the lowest loss at every compute: "
                        "the sizes do not bracket the optimum, so the envelope has no slope")
    log_sizes = np.log(np.where(covered, sizes[frontier], np.nan))
    line = masked_least_squares(np.log(grid), log_sizes[None], covered[None])[0]
    samples, ci95 = None, {"a": None, "k_N": None}
    if bootstrap:
        rng = np.random.default_rng(seed)
        # duplicates add nothing to a minimum, so a resample of runs is the set of runs drawn
        drawn = np.zeros((bootstrap, len(names)), dtype=bool)
        drawn[np.repeat(np.arange(bootstrap), len(names)), rng.integers(0, len(names), bootstrap * len(names))] = True
        winners = np.stack([_frontier(losses, keep) for keep in drawn])
        valid = winners >= 0
        log_n = np.log(sizes[np.where(valid, winners, 0)])
        lines = masked_least_squares(np.log(grid), log_n, valid & _two_sizes(sizes, winners, valid)[:, None])
        samples = {"a": lines[:, 1], "k_N": np.exp(lines[:, 0])}
        ci95 = {key: percentile_interval(value) for key, value in samples.items()}
    with np.errstate(invalid="ignore"):
        best = np.nanmin(np.where(np.isfinite(losses), losses, np.nan), axis=0)
    return to_jsonable({
        "law": "envelope",
        "form": "N_opt = k_N C^a",
        "params": {"a": line[1], "k_N": np.exp(line[0])},
        "ci95": ci95,
        "n_points": len(loss),
        "n_runs": len(names),
        "frontier": {"C": grid, "N": np.exp(log_sizes), "loss": best,
                     "run": [str(names[i]) if i >= 0 else None for i in frontier]},
        "bootstrap": {"resamples": bootstrap, "seed": seed, "samples": samples},
    })


def _curve(compute: np.ndarray, loss: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A run's curve as (log C, loss) sorted by C."""
    order = np.argsort(compute)
    return np.log(compute[order]), loss[order]


def _compute_grid(curves, n_grid: int) -> np.ndarray:
    """Log-spaced C over the range where at least two runs overlap: outside it one run is left alone, and the
    envelope there would be that run whatever its size (a curve ending a hair before the last one would drop
    out of the last grid point and hand it to a worse run)."""
    starts = np.sort([lc[0] for lc, _ in curves])
    ends = np.sort([lc[-1] for lc, _ in curves])
    low, high = (starts[1], ends[-2]) if len(curves) > 1 else (starts[0], ends[0])
    if not high > low:
        raise UserError("the loss curves do not overlap in compute; no envelope to take")
    return np.exp(np.linspace(low, high, n_grid))


def _frontier(losses: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Index of the run with the lowest loss at each grid point among runs `keep`; -1 where none."""
    masked = np.where(keep[:, None] & np.isfinite(losses), losses, np.inf)
    winner = np.argmin(masked, axis=0)
    return np.where(np.isfinite(masked.min(axis=0)), winner, -1)


def _two_sizes(sizes, winners, valid) -> np.ndarray:
    """Resamples whose envelope spans at least two sizes (else the slope is undefined)."""
    picked = np.where(valid, sizes[np.where(valid, winners, 0)], np.nan)
    return np.nanmax(picked, axis=1) > np.nanmin(picked, axis=1)
