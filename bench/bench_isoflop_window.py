"""The IsoFLOP parabola window, chosen by experiment: bias and RMSE of each budget's vertex (log10 N*, dex)
for the symmetric window (`isoflop.fit.regression.around_minimum`) at K = 1, 2, 3, 5 and one parabola over
all sizes, on Chinchilla-shaped profiles whose minimum lies 1, 2 or 3 sizes above the smallest size, or
mid-sweep; then the IsoFLOP exponent a from five budgets whose minima sit 1 to 3 sizes from the edge.

    PYTHONPATH=src python bench/bench_isoflop_window.py [--draws 200]
"""

from __future__ import annotations

import argparse

import numpy as np

from isoflop.errors import UserError
from isoflop.fit import fit_isoflop, regression
from isoflop.fit.laws import compute_optimal, optimal_allocation
from isoflop.fit.regression import around_minimum, fit_parabola

TRUE = np.array([1.8, 480.0, 2100.0, 0.35, 0.37])
SLID = "slid"  # the window before issue 19: 2K+1 sizes, slid inwards at an edge (K = 5)
WINDOWS = (1, 2, 3, 5, SLID, None)


def slid_window(u, y, window):
    values, index = np.unique(u, return_inverse=True)
    mean_y = np.bincount(index, weights=y) / np.bincount(index)
    width = min(2 * window + 1, len(values))
    start = int(np.clip(np.argmin(mean_y) - window, 0, len(values) - width))
    return (index >= start) & (index < start + width)


def window_mask(u, y, window):
    if window is None:
        return np.ones(len(u), bool)
    return slid_window(u, y, 5) if window == SLID else around_minimum(u, y, window)


def loss_at(n, compute):
    e, a, b, alpha, beta = TRUE
    return e + a / n**alpha + b / (compute / (6 * n)) ** beta


def vertex_errors(sizes, below, step, noise, draws, rng):
    """(bias, RMSE) in dex of the vertex per window, the minimum `below` sizes above the smallest size."""
    offsets = (np.arange(sizes) - below) * step
    errors = {window: [] for window in WINDOWS}
    for compute in (1e18, 1e20, 1e22):
        n_opt = optimal_allocation(TRUE, compute)["N_opt"]
        n = n_opt * 10**offsets
        for _ in range(draws):
            loss = loss_at(n, compute) * np.exp(rng.normal(0, noise, sizes))
            for window in WINDOWS:
                keep = window_mask(np.log(n), loss, window)
                errors[window].append((fit_parabola(np.log(n[keep]), loss[keep]).vertex - np.log(n_opt)) / np.log(10))
    return {w: (np.mean(e), np.sqrt(np.mean(np.square(e)))) for w, e in errors.items()}


def exponent_errors(sizes, step, noise, draws, rng):
    """Mean |a - true a| per window over studies of five budgets with minima 3, 3, 2, 1, 1 sizes from the edge (the sweep grid fixed while the optimum moves)."""
    true_a = compute_optimal(TRUE)["a"]
    errors = {window: [] for window in WINDOWS}
    budgets = (1e18, 3e18, 1e19, 3e19, 1e20)
    for _ in range(draws):
        c, n = [], []
        for compute, below in zip(budgets, (3, 3, 2, 1, 1)):
            grid = optimal_allocation(TRUE, compute)["N_opt"] * 10 ** ((np.arange(sizes) - below) * step)
            c.extend([compute] * sizes)
            n.extend(grid)
        c, n = np.array(c), np.array(n)
        loss = loss_at(n, c) * np.exp(rng.normal(0, noise, len(n)))
        for window in WINDOWS:
            regression.around_minimum = slid_window if window == SLID else around_minimum
            try:
                a = fit_isoflop(c, n, c / (6 * n), loss, window=5 if window == SLID else window)["params"]["a"]
            except UserError:  # too few bracketed budgets: counted as a miss of 1
                a = true_a + 1.0
            finally:
                regression.around_minimum = around_minimum
            errors[window].append(abs(a - true_a))
    return {w: (np.mean(e), np.quantile(e, 0.9)) for w, e in errors.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--draws", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    head = " | ".join("K=5 slid" if w == SLID else f"K={w}" if w else "all" for w in WINDOWS)
    print(f"| sweep (sizes, min at, step dex, noise) | {head} |")
    for sizes, step in ((21, 0.1), (9, 0.2)):
        for below in (1, 2, 3, sizes // 2):
            for noise in (0.002, 0.005):
                result = vertex_errors(sizes, below, step, noise, args.draws, rng)
                cells = " | ".join(f"{b:+.3f} / {r:.3f}" for b, r in result.values())
                print(f"| {sizes}, {below}, {step}, {noise:.1%} | {cells} |")
    print(f"\n| sweep (sizes, step dex, noise) | {head} |")
    print("\nexponent a, mean |error| / 90th percentile, five budgets with minima 3,3,2,1,1 sizes from the edge:")
    for sizes, step in ((21, 0.1), (9, 0.2), (5, 0.3)):
        for noise in (0.002, 0.005):
            result = exponent_errors(sizes, step, noise, max(20, args.draws // 5), rng)
            cells = " | ".join(f"{m:.3f} / {q:.3f}" for m, q in result.values())
            print(f"| {sizes}, {step}, {noise:.1%} | {cells} |")


if __name__ == "__main__":
    main()
