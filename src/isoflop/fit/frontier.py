"""A fitted law evaluated over a grid, with its 95% band: what the figures draw, computed here so that
the plots only draw and every curve comes from the same code as the numbers in `laws.json`."""

from __future__ import annotations

import numpy as np

from isoflop.errors import UserError
from isoflop.fit.bootstrap import percentile_interval
from isoflop.fit.isoflop import profile_allocation
from isoflop.fit.laws import optimal_allocation
from isoflop.fit.predict import predict
from isoflop.fit.residuals import prediction_interval

CHINCHILLA_NAMES = ("E", "A", "B", "alpha", "beta")


def compute_grid(fits: list[dict], n: int = 100) -> np.ndarray:
    """Log-spaced C from a third of the smallest budget to the largest target (at least 100x that start)."""
    known = []
    for fit in fits:
        known += [b["C"] for b in fit.get("budgets", [])]
        if fit.get("at_target"):
            known.append(fit["at_target"]["C"])
    if not known:
        known = [1e18, 1e24]
    low, high = min(known) / 3, max(known)
    return np.geomspace(low, max(high, low * 100), n)


def allocation_curves(law: dict, compute: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """Compute-optimal N*(C) and D*(C) of a Chinchilla or IsoFLOP `law` over `compute` (m,).

    Returns {"N_opt": (point (m,), band (2, m) or None), "D_opt": ...}: the band is the 95% percentile
    interval of the bootstrap fits' allocations, None when the law was fitted without bootstrap.
    """
    compute = np.asarray(compute, dtype=float)
    samples = law["bootstrap"]["samples"]
    evaluate = {"chinchilla": _chinchilla_allocation, "isoflop": profile_allocation}.get(law["law"])
    if evaluate is None:
        raise ValueError(f"no compute-optimal allocation for a {law['law']!r} law")
    point = evaluate(law["params"], compute)
    spread = evaluate(samples, compute) if samples else None
    return {key: (point[key][0], None if spread is None else percentile_interval(spread[key]))
            for key in ("N_opt", "D_opt")}


def _chinchilla_allocation(params: dict, compute: np.ndarray) -> dict[str, np.ndarray]:
    """`optimal_allocation` for Chinchilla `params` ({name: scalar or (K,) array}): each (K, m)."""
    stacked = np.column_stack([np.atleast_1d(params[name]) for name in CHINCHILLA_NAMES])
    return optimal_allocation(stacked[:, None, :], compute)


def budget_profile(budget: dict, N: np.ndarray) -> np.ndarray:
    """One budget's fitted parabola (an entry of an IsoFLOP fit's `budgets`) at sizes `N`."""
    c = budget["coefficients"]
    u = np.log(np.asarray(N, dtype=float))
    return c["c0"] + c["c1"] * u + c["c2"] * u**2


def loss_curve(law: dict, x: np.ndarray, n: int = 200, extend: float = 10.0):
    """A one-variable law over its data's range `x` and `extend` times beyond: (grid, point, (low, high))."""
    grid = np.geomspace(np.min(x), np.max(x) * extend, n)
    point, band = predict(law, **{law["variable"]: grid})
    return grid, point, band


# ---- the compute-optimal frontier as numbers: `isoflop predict --C` and `isoflop compare` ------------


def optimal_loss(law: dict, compute: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The loss a Chinchilla or IsoFLOP `law` reaches at its compute-optimal allocation over `compute` (m,):
    the point (m,) and the bootstrap fits' losses (B, m), None when the law was fitted without bootstrap."""
    point, spread = _optimum(law, compute)
    return point["loss"][0], None if spread is None else spread["loss"]


def optimum_at(law: dict, compute: float, level: float = 0.95, seed: int = 0) -> dict:
    """N*, D* and the loss at the compute-optimal allocation for `compute` FLOPs, with intervals at `level`.

    Returns {"N_opt", "D_opt", "loss"}: each (point, (low, high)), a confidence interval (the bootstrap
    fits' spread: where the law's optimum lies; nan without bootstrap), and "loss_pred": the prediction
    interval of a new run's loss there (that spread plus the fit's residual noise). N* and D* have no
    prediction interval: a run's size and tokens are chosen, not noisy.
    """
    point, spread = _optimum(law, [compute])
    result = {}
    for key in ("N_opt", "D_opt", "loss"):
        conf = percentile_interval(spread[key], level)[:, 0] if spread is not None else np.full(2, np.nan)
        result[key] = (float(point[key][0, 0]), (float(conf[0]), float(conf[1])))
    losses = None if spread is None else spread["loss"]
    low, high = prediction_interval(point["loss"][0], losses, law.get("residuals"), level, seed)[:, 0]
    result["loss_pred"] = (float(low), float(high))
    return result


def _optimum(law: dict, compute) -> tuple[dict, dict | None]:
    """`law`'s allocation (N_opt, D_opt, loss, each (1, m)) at `compute` and its bootstrap fits' (B, m)."""
    evaluate = {"chinchilla": _chinchilla_allocation, "isoflop": profile_allocation}.get(law.get("law"))
    if evaluate is None:
        raise UserError(f"a {law.get('law')!r} law has no compute-optimal allocation; "
                        "it needs a chinchilla or isoflop law")
    compute = np.atleast_1d(np.asarray(compute, dtype=float))
    samples = law["bootstrap"]["samples"]
    return evaluate(law["params"], compute), (evaluate(samples, compute) if samples else None)
