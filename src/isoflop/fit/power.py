"""Fits of sum-of-power-law losses: Chinchilla's L(N, D) and one-dimensional loss curves.

Both return plain JSON-ready dicts (the CLI writes them as they are) with point estimates, 95%
percentile-bootstrap intervals and the bootstrap samples themselves, which `predict` uses for
intervals on new points.
"""

from __future__ import annotations

import numpy as np

from isoflop.errors import UserError
from isoflop.fit.bootstrap import parallel_rows, percentile_interval, resample_counts
from isoflop.fit.checks import (
    distinct_points,
    duplicate_rows,
    enough_points,
    fit_warnings,
    floor_at_zero,
    positive_column,
    same_length,
    to_jsonable,
)
from isoflop.fit.laws import CHINCHILLA, EXPONENT_NAMES, PowerSumLaw, compute_optimal, optimal_allocation
from isoflop.fit.residuals import residual_summary
from isoflop.fit.solve import BLOCK_ELEMENTS, global_minimize, minimize_batched, polish

CHINCHILLA_FORM = "L = E + A / N^alpha + B / D^beta"
# Above this many rows the multi-start search and the bootstrap run on a random subsample of this size, and
# only the final polish sees every row: memory and time then grow linearly in rows (a 1e6-row fit is seconds,
# not a 34 GiB grid of starts by rows). The bootstrap of the subsample, its deviations scaled by
# sqrt(m / n), is the m-out-of-n bootstrap (Bickel, Gotze & van Zwet 1997): a smooth estimator's spread
# shrinks as 1 / sqrt(rows), so the subsample's resamples, rescaled, have the full data's spread.
SUBSAMPLE_ROWS = 1024


def fit_chinchilla(
    N,
    D,
    loss,
    *,
    huber_delta: float = 1e-3,
    bootstrap: int = 0,
    seed: int = 0,
    n_jobs: int | None = None,
    target_C: float | None = None,
) -> dict:
    """Fit L(N, D) = E + A/N^alpha + B/D^beta (Hoffmann et al. 2022, Approach 3).

    Huber loss (`huber_delta`) on log residuals, summed; global search then polish (see
    `isoflop.fit.solve`). With `bootstrap` > 0, that many resamples of the points are refitted
    (seeded by `seed`, on `n_jobs` threads) for 95% intervals on every parameter, on the
    compute-optimal exponents a and b and scale G (N* = G (C/6)^a, D* = (C/6)^b / G), and, with
    `target_C`, on N*, D* and the loss they reach at that compute.
    """
    N, D = positive_column("N", N), positive_column("D", D)
    loss = positive_column("loss", loss)
    same_length(N=N, D=D, loss=loss)
    result, params, samples = _fit_power_sum(
        CHINCHILLA, np.column_stack([N, D]), loss, huber_delta, bootstrap, seed, n_jobs)
    result["compute_optimal"] = compute_optimal_summary(params, samples)
    if target_C is not None:
        result["at_target"] = allocation_at(params, samples, target_C)
    return to_jsonable({"law": "chinchilla", "form": CHINCHILLA_FORM, **result})


def fit_curve(
    x,
    loss,
    *,
    variable: str = "C",
    offset: bool = True,
    huber_delta: float = 1e-3,
    bootstrap: int = 0,
    seed: int = 0,
    n_jobs: int | None = None,
) -> dict:
    """Fit a loss curve in one variable: L = E + A x^-alpha, or A x^-alpha when not `offset`.

    Same objective, search and bootstrap as `fit_chinchilla`; `variable` (N, D or C) names x.
    """
    x = positive_column(variable, x)
    loss = positive_column("loss", loss)
    same_length(**{variable: x, "loss": loss})
    law = PowerSumLaw((variable,), offset=offset)
    result, _, _ = _fit_power_sum(law, x[:, None], loss, huber_delta, bootstrap, seed, n_jobs)
    form = ("E + " if offset else "") + f"A * {variable}^-alpha"
    return to_jsonable({"law": "power", "form": f"L = {form}", "variable": variable, "offset": offset, **result})


def compute_optimal_summary(params: np.ndarray, samples: np.ndarray | None) -> dict:
    """Chinchilla's compute-optimal exponents a, b and scale G (see `compute_optimal`), with 95% intervals."""
    allocation = compute_optimal(params)
    return {"a": allocation["a"], "b": allocation["b"], "G": allocation["G"],
            "ci95": _intervals(compute_optimal(samples) if samples is not None else None, ("a", "b", "G"))}


def allocation_at(params: np.ndarray, samples: np.ndarray | None, compute: float) -> dict:
    """N*, D* and their loss at `compute` for a Chinchilla fit, with 95% intervals."""
    point = optimal_allocation(params, compute)
    spread = optimal_allocation(samples, compute) if samples is not None else None
    return {"C": float(compute), **point, "ci95": _intervals(spread, ("N_opt", "D_opt", "loss"))}


def _fit_power_sum(law, x, y, huber_delta, bootstrap, seed, n_jobs) -> tuple[dict, np.ndarray, np.ndarray | None]:
    """The shared fit: the dict entries common to all laws, the parameters (P,) and the bootstrap
    samples (B, P), or None without bootstrap."""
    if not huber_delta > 0:
        raise UserError(f"huber delta must be positive, got {huber_delta}")
    if bootstrap < 0:
        raise UserError(f"bootstrap must be >= 0 resamples, got {bootstrap}")
    n_distinct = distinct_points(x)
    enough_points(n_distinct, law.n_params, f"a law in {', '.join(law.names)}")
    log_x, log_y = np.log(x), np.log(y)
    rows = _subsample(len(y), seed)
    search_x, search_y = (log_x, log_y) if rows is None else (log_x[rows], log_y[rows])
    search_theta, objective, minima = global_minimize(law, search_x, search_y, huber_delta)
    theta = search_theta
    if rows is not None:
        theta, objective = polish(law, search_theta, log_x, log_y, huber_delta)
    params = law.to_params(theta)
    samples, failed = None, 0
    if bootstrap:
        counts = resample_counts(len(search_y), bootstrap, seed)
        thetas = bootstrap_refits(law, search_x, search_y, huber_delta, minima, counts, n_jobs)
        if rows is not None:
            thetas = theta + np.sqrt(len(search_y) / len(y)) * (thetas - search_theta)
        failed = int((~np.isfinite(thetas).all(axis=1)).sum())
        with np.errstate(over="ignore"):
            samples = law.to_params(thetas)
    names = law.names
    samples_by_name = None if samples is None else dict(zip(names, samples.T))
    result = {
        "params": dict(zip(names, params)),
        "ci95": _intervals(samples_by_name, names),
        "n_points": len(y),
        "n_distinct_points": n_distinct,
        "search_rows": len(search_y),
        "objective": objective,
        "huber_delta": huber_delta,
        "residuals": residual_summary(y, law.predict(params, x)[0], "log", law.n_params),
        "bootstrap": {
            "resamples": bootstrap, "seed": seed, "failed": failed,
            "samples": samples_by_name,
        },
    }
    result["warnings"] = (duplicate_rows(x, y) + fit_warnings(result, EXPONENT_NAMES)
                          + floor_at_zero(result["params"], y))
    return result, params, samples


def _subsample(n_rows: int, seed: int) -> np.ndarray | None:
    """SUBSAMPLE_ROWS rows drawn without replacement (seeded, in their order), or None for a table that small."""
    if n_rows <= SUBSAMPLE_ROWS:
        return None
    return np.sort(np.random.default_rng([seed, n_rows]).choice(n_rows, SUBSAMPLE_ROWS, replace=False))


def bootstrap_refits(
    law: PowerSumLaw,
    log_x: np.ndarray,
    log_y: np.ndarray,
    huber_delta: float,
    starts: np.ndarray,
    counts: np.ndarray,
    n_jobs: int | None,
) -> np.ndarray:
    """Refit every resample (`counts`, one row per resample) from each of `starts`; best `theta` each.

    Warm starts are safe here, where a global search per resample would be costly: a resample
    reweights the same points, so its optimum lies near the full fit's unless the landscape has
    another basin nearly as deep; every distinct minimum the full search found is a start, so a
    resample that tips into such a basin still reaches it (tests check this against a full
    global search per resample).
    """
    n_starts = len(starts)
    block = max(1, BLOCK_ELEMENTS // (n_starts * counts.shape[1]))

    def refit(replicates: np.ndarray) -> np.ndarray:
        # blocks bound the (replicates x starts, points) temporaries; rows are independent, so results
        # do not depend on the block size
        return np.concatenate([refit_block(replicates[i:i + block]) for i in range(0, len(replicates), block)])

    def refit_block(replicates: np.ndarray) -> np.ndarray:
        weights = counts[replicates].astype(float)
        owner = np.repeat(np.arange(len(replicates)), n_starts)

        def objective(theta, rows):
            return law.huber_objective(theta, log_x, log_y, weights[owner[rows]], huber_delta)

        theta, f, _ = minimize_batched(objective, np.tile(starts, (len(replicates), 1)))
        f = np.where(np.isfinite(f), f, np.inf).reshape(len(replicates), n_starts)
        best = np.argmin(f, axis=1)
        theta = theta.reshape(len(replicates), n_starts, -1)[np.arange(len(replicates)), best]
        theta[~np.isfinite(f.min(axis=1))] = np.nan
        return theta

    return parallel_rows(refit, np.arange(len(counts)), n_jobs, min_chunk=max(1, 1000 // n_starts))


def _intervals(samples: dict | None, names) -> dict:
    """{name: [low, high]} from bootstrap `samples` {name: array}, or {name: None} without them."""
    if samples is None:
        return {name: None for name in names}
    return {name: percentile_interval(samples[name]) for name in names}
