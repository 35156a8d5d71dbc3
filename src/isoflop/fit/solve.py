"""Global search and local polish for a `PowerSumLaw` under the summed Huber loss.

The objective has many local minima (Besiroglu et al. 2024: about 1 start in 11 of Hoffmann's
grid reaches the best one), so one start is never enough. The search:

1. starts: every point of the replication's grid (`replication_grid`), plus the best points of
   a dense exponent grid where the linear coefficients are solved exactly by non-negative least
   squares on relative residuals (`profiled_starts`);
2. a vectorised BFGS (`minimize_batched`) from all starts at once for a few screening steps,
   then from the lowest 64 to convergence;
3. a tight scipy L-BFGS-B polish of the best, kept only if it lowers the objective further.

Every start of the replication's grid takes real optimiser steps, not merely a score, before the
lowest go on; the profiled starts cover exponents the coarse grid steps over. On the replication's
data this reaches the best of its 4,500 L-BFGS-B runs (a slow test runs that recipe in full).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
from scipy.optimize import minimize

from isoflop.fit.laws import PowerSumLaw

Objective = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

ARMIJO = 1e-4
BLOCK_ELEMENTS = 2_000_000  # starts x points evaluated at once: about 16 MB per temporary array


def minimize_batched(
    objective: Objective,
    x0: np.ndarray,
    *,
    max_iter: int = 400,
    gtol: float = 1e-12,
    ftol: float = 1e-15,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimise K independent problems at once with BFGS and a backtracking Armijo line search.

    `objective(x, rows)` returns f (k,) and grad (k, P) of problems `rows` at `x` (k, P). Every
    step is row-wise, so a row's path never depends on which other rows share the batch: results
    are identical however the problems are split across workers. A row stops when its gradient's
    largest entry is below `gtol`, its relative decrease below `ftol`, or its line search fails
    (it sits at a minimum to machine precision). Returns x (K, P), f (K,), iterations (K,).
    """
    x = np.array(x0, dtype=float)
    n_rows, n_params = x.shape
    rows = np.arange(n_rows)
    f, g = objective(x, rows)
    inverse_hessian = np.broadcast_to(np.eye(n_params), (n_rows, n_params, n_params)).copy()
    iterations = np.zeros(n_rows, dtype=int)
    fresh = np.ones(n_rows, dtype=bool)  # scale the first BFGS update (Nocedal & Wright 6.20)
    active = np.isfinite(f) & (np.abs(g).max(axis=1) > gtol)
    for _ in range(max_iter):
        idx = rows[active]
        if idx.size == 0:
            break
        direction = -np.einsum("kij,kj->ki", inverse_hessian[idx], g[idx])
        slope = (direction * g[idx]).sum(axis=1)
        uphill = ~(slope < 0)
        if uphill.any():  # a stale curvature estimate: restart that row from steepest descent
            inverse_hessian[idx[uphill]] = np.eye(n_params)
            direction[uphill] = -g[idx[uphill]]
            slope[uphill] = -(g[idx[uphill]] ** 2).sum(axis=1)
            fresh[idx[uphill]] = True
        step = np.where(fresh[idx], 1.0 / np.maximum(1.0, np.abs(direction).max(axis=1)), 1.0)
        x_new, f_new, g_new = _line_search(objective, idx, x[idx], f[idx], direction, slope, step)
        moved = np.isfinite(f_new)
        s = x_new - x[idx]
        y = g_new - g[idx]
        decrease = f[idx] - f_new
        scale = np.maximum(np.maximum(np.abs(f[idx]), np.abs(f_new)), np.finfo(float).tiny)
        _bfgs_update(inverse_hessian, idx[moved], s[moved], y[moved], fresh)
        x[idx[moved]], f[idx[moved]], g[idx[moved]] = x_new[moved], f_new[moved], g_new[moved]
        iterations[idx] += 1
        done = ~moved | (decrease <= ftol * scale)
        done |= np.abs(g[idx]).max(axis=1) <= gtol
        active[idx[done]] = False
    return x, f, iterations


def _line_search(objective, idx, x, f, direction, slope, step, max_backtracks=40):
    """Backtrack each row until the Armijo condition holds; rows that never do get f = nan.

    Each retry takes the minimiser of the quadratic through f, the slope and the failed trial,
    kept within [0.1, 0.5] of the failed step: far fewer retries than halving from a poor start.
    """
    x_new = np.empty_like(x)
    f_new = np.full(len(idx), np.nan)
    g_new = np.zeros_like(x)
    pending = np.arange(len(idx))
    for _ in range(max_backtracks):
        t, d = step[pending], slope[pending]
        trial = x[pending] + t[:, None] * direction[pending]
        f_trial, g_trial = objective(trial, idx[pending])
        ok = np.isfinite(f_trial) & (f_trial <= f[pending] + ARMIJO * t * d)
        accepted = pending[ok]
        x_new[accepted], f_new[accepted], g_new[accepted] = trial[ok], f_trial[ok], g_trial[ok]
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            quadratic = -d * t**2 / (2.0 * (f_trial - f[pending] - d * t))
        quadratic = np.where(np.isfinite(quadratic), quadratic, 0.1 * t)
        step[pending] = np.clip(quadratic, 0.1 * t, 0.5 * t)
        pending = pending[~ok]
        if pending.size == 0:
            break
    return x_new, f_new, g_new


def _bfgs_update(inverse_hessian, idx, s, y, fresh):
    """In-place BFGS update of the inverse Hessians of rows `idx`; skipped where s.y <= 0."""
    sy = (s * y).sum(axis=1)
    curved = sy > 1e-12 * np.sqrt((s * s).sum(axis=1) * (y * y).sum(axis=1))
    idx, s, y, sy = idx[curved], s[curved], y[curved], sy[curved]
    first = fresh[idx]
    if first.any():
        gamma = sy[first] / (y[first] ** 2).sum(axis=1)
        inverse_hessian[idx[first]] = gamma[:, None, None] * np.eye(s.shape[1])
        fresh[idx[first]] = False
    h = inverse_hessian[idx]
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        rho = 1.0 / sy
        hy = np.einsum("kij,kj->ki", h, y)
        yhy = (y * hy).sum(axis=1)
        h = (
            h
            - rho[:, None, None] * (hy[:, :, None] * s[:, None, :] + s[:, :, None] * hy[:, None, :])
            + (rho**2 * yhy + rho)[:, None, None] * s[:, :, None] * s[:, None, :]
        )
    broken = ~np.isfinite(h).all(axis=(1, 2))  # curvature beyond float range: start afresh
    h[broken] = np.eye(s.shape[1])
    fresh[idx[broken]] = True
    inverse_hessian[idx] = h


def replication_grid(law: PowerSumLaw) -> np.ndarray:
    """Hoffmann et al.'s 4,500-point start grid, as used by Besiroglu et al., for any `law`.

    Exponents in {0, 0.5, ..., 2}, log coefficients in {0, 5, ..., 25}, log E in {-1, -0.5, ..., 1}.
    Rows are `theta` vectors (log coefficients, log E, exponents).
    """
    v = len(law.variables)
    axes = [np.arange(0, 30, 5.0)] * v
    if law.offset:
        axes.append(np.arange(-1, 1.5, 0.5))
    axes += [np.arange(0, 2.5, 0.5)] * v
    return np.array(list(itertools.product(*axes)))


def profiled_starts(
    law: PowerSumLaw,
    log_x: np.ndarray,
    log_y: np.ndarray,
    *,
    exponents: np.ndarray | None = None,
) -> np.ndarray:
    """For each exponent vector on a grid, the coefficients that minimise squared relative error.

    Given the exponents the law is linear in its coefficients (E, A_j), and relative error
    approximates the log residual, so a non-negative least-squares solve per exponent vector
    (exact, by enumerating active sets) profiles the coefficients out. Returns `theta` rows
    (one per exponent vector) ready to score with the real objective.
    """
    v = len(law.variables)
    if exponents is None:
        exponents = np.linspace(0.02, 2.5, 48 if v > 1 else 400)
    grid = np.array(list(itertools.product(exponents, repeat=v)))  # (G, V)
    y = np.exp(log_y)
    with np.errstate(under="ignore"):
        powers = np.exp(-grid[:, None, :] * log_x[None, :, :])  # (G, n, V)
    columns = [powers[..., j] for j in range(v)]
    if law.offset:
        columns.append(np.ones_like(columns[0]))
    design = np.stack(columns, axis=-1) / y[None, :, None]  # rows divided by y: relative error
    norms = np.sqrt((design**2).sum(axis=1, keepdims=True))
    design = design / np.where(norms > 0, norms, 1.0)
    coefs = _nonnegative_least_squares(design, np.ones(len(y))) / np.where(norms > 0, norms, 1.0)[:, 0]
    floor = 1e-12 * y.min()  # a dropped term stays in the LSE, negligibly small but differentiable
    log_coefs = np.log(np.maximum(coefs, floor * np.exp(grid.max(axis=1) * log_x.max())[:, None]))
    return np.concatenate([log_coefs, grid], axis=1)


def _nonnegative_least_squares(design: np.ndarray, target: np.ndarray) -> np.ndarray:
    """min ||design c - target|| subject to c >= 0 for G small problems (G, n, k) at once."""
    n_grid, _, k = design.shape
    best = np.zeros((n_grid, k))
    best_rss = np.full(n_grid, (target**2).sum())
    for size in range(1, k + 1):
        for subset in itertools.combinations(range(k), size):
            sub = design[:, :, subset]
            gram = np.einsum("gni,gnj->gij", sub, sub) + 1e-12 * np.eye(size)
            rhs = np.einsum("gni,n->gi", sub, target)
            try:
                solution = np.linalg.solve(gram, rhs[..., None])[..., 0]
            except np.linalg.LinAlgError:
                continue
            rss = (((sub * solution[:, None, :]).sum(axis=-1) - target) ** 2).sum(axis=1)
            better = (solution >= 0).all(axis=1) & (rss < best_rss)
            best[np.ix_(better, subset)] = solution[better]
            best[np.ix_(better, [i for i in range(k) if i not in subset])] = 0.0
            best_rss[better] = rss[better]
    return best


def polish(
    law: PowerSumLaw, theta: np.ndarray, log_x, log_y, delta: float, weights: np.ndarray | float = 1.0
) -> tuple[np.ndarray, float]:
    """Tight L-BFGS-B from `theta` (P,). Its `ftol` is relative to max(|f|, 1), so the objective is
    scaled to about 1 first: otherwise a small objective (a mean, few points) stops it early."""
    objective = _plain_objective(law, log_x, log_y, delta, weights)
    scale = 1.0 / max(float(objective(theta[None], None)[0][0]), np.finfo(float).tiny)

    def fun(t):
        f, g = objective(t[None], None)
        return scale * f[0], scale * g[0]

    result = minimize(fun, theta, jac=True, method="L-BFGS-B",
                      options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 10_000, "maxcor": 20})
    return result.x, float(result.fun) / scale


def global_minimize(
    law: PowerSumLaw,
    log_x: np.ndarray,
    log_y: np.ndarray,
    delta: float,
    *,
    weights: np.ndarray | float = 1.0,
    screen_iterations: int = 25,
    finalists: int = 64,
    n_minima: int = 4,
) -> tuple[np.ndarray, float, np.ndarray]:
    """The best `theta` found from every start, its objective, and up to `n_minima` distinct minima.

    `weights` (n,) multiply each point's loss (resample counts; 1/n gives the mean loss, which
    must and does give the same optimum as the sum, because every tolerance here is relative).

    Every start runs `screen_iterations` BFGS steps; the `finalists` lowest then run to
    convergence, and the best is polished by scipy's L-BFGS-B. The distinct minima (best first)
    seed bootstrap refits, so a resample whose optimum moves to another basin still finds it.
    """
    profiled = profiled_starts(law, log_x, log_y)
    objective = _plain_objective(law, log_x, log_y, delta, weights)
    profiled_f, _ = objective(profiled, None)
    best_profiled = profiled[np.argsort(profiled_f)[:finalists]]
    starts = np.vstack([replication_grid(law), best_profiled])
    # in blocks of starts, so memory stays bounded by BLOCK_ELEMENTS per temporary whatever the rows; rows of a
    # batch are independent, so the blocks change no result
    block = max(1, BLOCK_ELEMENTS // len(log_y))
    screened_blocks = [minimize_batched(objective, starts[i:i + block], max_iter=screen_iterations)[:2]
                       for i in range(0, len(starts), block)]
    screened = np.vstack([theta for theta, _ in screened_blocks])
    screened_f = np.concatenate([f for _, f in screened_blocks])
    keep = np.argsort(np.where(np.isfinite(screened_f), screened_f, np.inf))[:finalists]
    minima, minima_f, _ = minimize_batched(objective, screened[keep], max_iter=2000)
    order = np.argsort(np.where(np.isfinite(minima_f), minima_f, np.inf))
    minima, minima_f = minima[order], minima_f[order]
    best, best_f = polish(law, minima[0], log_x, log_y, delta, weights)
    if not best_f <= minima_f[0]:
        best, best_f = minima[0], float(minima_f[0])
    distinct = [best]
    for theta in minima[1:]:
        if len(distinct) == n_minima:
            break
        if all(np.abs(theta - other).max() > 1e-3 for other in distinct):
            distinct.append(theta)
    return best, best_f, np.array(distinct)


def _plain_objective(law: PowerSumLaw, log_x, log_y, delta, weights=1.0) -> Objective:
    """The objective with fixed per-point `weights`, in the `minimize_batched` convention."""

    def objective(theta, rows):
        return law.huber_objective(theta, log_x, log_y, weights, delta)

    return objective
