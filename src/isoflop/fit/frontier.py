"""A fitted law evaluated over a grid, with its 95% band: what the figures draw, computed here so that
the plots only draw and every curve comes from the same code as the numbers in `laws.json`."""

from __future__ import annotations

import numpy as np

from isoflop.errors import UserError
from isoflop.fit.bootstrap import percentile_interval
from isoflop.fit.checks import to_jsonable
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
    """Compute-optimal N*(C) and D*(C) of a Chinchilla, IsoFLOP or envelope `law` over `compute` (m,).

    Returns {"N_opt": (point (m,), band (2, m) or None), "D_opt": ...}: the band is the 95% percentile
    interval of the bootstrap fits' allocations, None when the law was fitted without bootstrap.
    """
    point, spread = _allocations(law, compute)
    return {key: (point[key][0], None if spread is None else percentile_interval(spread[key]))
            for key in ("N_opt", "D_opt")}


def tokens_per_param_curve(law: dict, compute: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """D*/N* of `law` over `compute`: (point (m,), 95% band (2, m) or None). The band is taken over each
    bootstrap fit's own ratio: at a fixed C a fit with a larger N* has a smaller D*, so the ratio's ends come
    from the ends of N*'s band, not from dividing the ends of the D* and N* bands."""
    point, spread = _allocations(law, compute)
    ratio = point["D_opt"][0] / point["N_opt"][0]
    return ratio, None if spread is None else percentile_interval(spread["D_opt"] / spread["N_opt"])


def envelope_allocation(law: dict, compute: float) -> dict:
    """N* and D* at `compute` from a fitted envelope law, with 95% intervals (like `isoflop_allocation`)."""
    curves = allocation_curves(law, np.array([compute], dtype=float))
    return to_jsonable({"C": float(compute), **{key: point[0] for key, (point, _) in curves.items()},
                        "ci95": {key: None if band is None else band[:, 0] for key, (_, band) in curves.items()}})


def _allocations(law: dict, compute) -> tuple[dict, dict | None]:
    """`law`'s allocations ({"N_opt", "D_opt"}, each (K, m)) at its parameters and at its bootstrap samples."""
    compute = np.asarray(compute, dtype=float)
    samples = law["bootstrap"]["samples"]
    if law["law"] == "envelope":
        per_token = law["flops_per_token"]

        def evaluate(params, c):
            return _envelope_allocation(params, c, per_token)
    else:
        evaluate = {"chinchilla": _chinchilla_allocation, "isoflop": profile_allocation}.get(law["law"])
    if evaluate is None:
        raise ValueError(f"no compute-optimal allocation for a {law['law']!r} law")
    return evaluate(law["params"], compute), evaluate(samples, compute) if samples else None


def _chinchilla_allocation(params: dict, compute: np.ndarray) -> dict[str, np.ndarray]:
    """`optimal_allocation` for Chinchilla `params` ({name: scalar or (K,) array}): each (K, m)."""
    stacked = np.column_stack([np.atleast_1d(params[name]) for name in CHINCHILLA_NAMES])
    return optimal_allocation(stacked[:, None, :], compute)


def _envelope_allocation(params: dict, compute: np.ndarray, per_token: dict) -> dict[str, np.ndarray]:
    """N* = k_N C^a and the D* that spends C at N*'s FLOPs per token (C / D = c N^p): each (K, m)."""
    k_n, a = (np.atleast_1d(np.asarray(params[name], dtype=float))[:, None] for name in ("k_N", "a"))
    compute = np.atleast_1d(compute)[None, :]
    n_opt = k_n * compute**a
    return {"N_opt": n_opt, "D_opt": compute / (per_token["c"] * n_opt ** per_token["p"])}


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


def allocation_exponents(law: dict) -> dict[str, tuple[float, list | None]]:
    """The exponents of N* ∝ C^a and D* ∝ C^b of a Chinchilla, IsoFLOP or envelope `law`, each with its 95%
    interval: {"N_opt": (a, [low, high] or None), "D_opt": (b, ...)}. The envelope fits only N*; its D*
    exponent follows from C / D = c N^p as b = 1 - p a."""
    if law["law"] == "chinchilla":
        opt = law["compute_optimal"]
        return {"N_opt": (opt["a"], opt["ci95"].get("a")), "D_opt": (opt["b"], opt["ci95"].get("b"))}
    if law["law"] == "isoflop":
        return {key: (law["params"][name], law["ci95"].get(name)) for key, name in (("N_opt", "a"), ("D_opt", "b"))}
    p = law["flops_per_token"]["p"]
    a, ci = law["params"]["a"], law["ci95"].get("a")
    b_ci = None if not ci or None in ci else sorted(1 - p * value for value in ci)
    return {"N_opt": (a, ci), "D_opt": (1 - p * a, b_ci)}


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
    """`law`'s allocation (N_opt, D_opt, loss, each (1, m)) at `compute` and its bootstrap fits' (B, m): the
    laws that predict a loss there (an envelope fits only N*)."""
    if law.get("law") not in ("chinchilla", "isoflop"):
        raise UserError(f"a {law.get('law')!r} law has no compute-optimal allocation; "
                        "it needs a chinchilla or isoflop law")
    return _allocations(law, np.atleast_1d(np.asarray(compute, dtype=float)))
