"""IsoFLOP profiles (Hoffmann et al. 2022, Approach 2).

Per compute budget, a parabola of loss in log N locates the loss-optimal size N* (with Fieller's
interval for the vertex); across budgets, power laws N* = k_N C^a and D* = k_D C^b follow by OLS in
log space. The budgets' minimum losses give L*(C) = k_L C^-gamma and their mean curvature kappa, so
the fitted profiles also predict the loss of a run of size N at compute C:

    L(N, C) = L*(C) + kappa (ln N - ln N*(C))^2,

which is how the extrapolation check scores this approach run by run.
"""

from __future__ import annotations

import numpy as np

from isoflop.errors import UserError
from isoflop.fit.bootstrap import percentile_interval, resample_counts
from isoflop.fit.checks import duplicate_rows, fit_warnings, positive_column, same_length, to_jsonable
from isoflop.fit.regression import (
    MIN_DISTINCT,
    group_labels,
    masked_least_squares,
    ols_line,
    parabolas_by_group,
    resampled_vertices,
)
from isoflop.fit.residuals import residual_summary

ISOFLOP_FORM = ("N_opt = k_N C^a; D_opt = k_D C^b; loss_opt = k_L C^-gamma; "
                "L(N, C) = loss_opt(C) + kappa (ln N - ln N_opt(C))^2")
ISOFLOP_PARAMS = ("a", "k_N", "b", "k_D", "gamma", "k_L", "kappa")
# Neighbours each side of a budget's lowest-loss size that its local parabola spans, symmetrically
# (min(K, sizes left, sizes right) each side; see `around_minimum`). A loss profile in ln N is not a
# parabola, so a parabola over a lopsided span of sizes leans its vertex toward the longer flank; a
# narrow window is unbiased but noisy. Experiment (bench/bench_isoflop_window.py, recorded in
# bench/RESULTS.md "IsoFLOP window"): Chinchilla-shaped profiles with minima 1, 2 or 3 sizes above the
# smallest size or mid-sweep, 21 sizes 0.1 dex apart or 9 sizes 0.2 dex apart, noise 0.2% or 0.5%;
# and the exponent a from five budgets whose minima sit 3, 3, 2, 1, 1 sizes from the edge. On 9-size
# sweeps with the minimum one size from the edge, the window slid inwards (the default before) and one
# parabola over all sizes put the vertex +0.039 dex off; the symmetric K=5 window +0.004. Across the
# exponent rows K=5 has the smallest or near-smallest mean error of the symmetric windows (0.014-0.036);
# a window whose minimum is one size from the edge holds 3 sizes and warns (its parabola interpolates).
# On long noisy sweeps (21 sizes) the slid window's wider span is less noisy and did a little better.
DEFAULT_WINDOW = 5


def fit_isoflop(
    C,
    N,
    D,
    loss,
    *,
    budget=None,
    bootstrap: int = 0,
    seed: int = 0,
    target_C: float | None = None,
    window: int | None = DEFAULT_WINDOW,
) -> dict:
    """Fit IsoFLOP profiles: per-budget optima, then N*, D* and L* as power laws in C.

    Runs are grouped by `budget` labels when given, else by clusters of C (see `group_labels`);
    each group's C is the geometric mean of its runs' achieved C. Each budget's parabola is local:
    fitted to up to `window` sizes each side of its lowest loss, as many each side (None: every size; see
    `DEFAULT_WINDOW` for why a window, and why this one). A budget whose parabola is not
    convex or whose vertex is not strictly inside its sizes is flagged `minimum_at_edge` and left
    out of the power laws (its vertex would be an extrapolation). Intervals: with `bootstrap` > 0,
    percentiles over resamples of runs within budgets' windows (`seed`), around the point estimate
    of the full data; otherwise OLS t-intervals over budgets, which ignore the vertices' own
    uncertainty and so are narrower than they should be.
    """
    C, N = positive_column("C", C), positive_column("N", N)
    D, loss = positive_column("D", D), positive_column("loss", loss)
    same_length(C=C, N=N, D=D, loss=loss)
    labels = group_labels(C) if budget is None else np.asarray(budget)
    if len(labels) != len(C):
        raise UserError(f"budget labels ({len(labels)}) and runs ({len(C)}) differ in number")
    warnings: list[str] = []
    groups = _budgets(labels, C, N, D, loss, window, warnings)
    usable = [g for g in groups if not g["parabola"].minimum_at_edge]
    for g in groups:
        if g["parabola"].minimum_at_edge:
            warnings.append(f"budget C={g['C']:.3g}: the minimum is not bracketed by its sizes "
                            "(parabola not convex or vertex at an edge); left out of the power laws")
    if len(usable) < 2:
        raise UserError(f"IsoFLOP fit needs 2 or more budgets whose sizes bracket the loss minimum; "
                        f"{len(usable)} of {len(groups)} do. Add sizes either side of the optimum")
    params, ols_ci = _profile_laws(
        np.log([g["C"] for g in usable]),
        np.array([g["parabola"].vertex for g in usable]),
        np.array([g["log_d_line"](g["parabola"].vertex) for g in usable]),
        np.array([g["parabola"].y_at_vertex for g in usable]),
        np.array([g["parabola"].coefficients[2] for g in usable]),
    )
    samples, failed = None, 0
    if bootstrap:
        samples = _bootstrap(usable, bootstrap, seed)
        failed = int((~np.isfinite(np.column_stack(list(samples.values())))).any(axis=1).sum())
        if failed:
            warnings.append(f"{failed} of {bootstrap} IsoFLOP resamples had fewer than 2 bracketed "
                            "budgets and were left out of the intervals")
    ci95 = ({name: percentile_interval(samples[name]) for name in ISOFLOP_PARAMS}
            if samples is not None else ols_ci)
    fitted_rows = np.concatenate([g["rows"] for g in usable])
    fitted = profile_loss(params, N[fitted_rows], C[fitted_rows])[0]
    result = {
        "law": "isoflop",
        "form": ISOFLOP_FORM,
        "params": params,
        "ci95": ci95,
        "n_points": int(sum(g["n_runs"] for g in groups)),
        "window": window,
        "n_budgets_used": len(usable),
        "objective": float(sum(g["rss"] for g in groups)),
        "budgets": [_budget_summary(g) for g in groups],
        # the runs the usable parabolas were fitted to, against the profile law (for prediction intervals)
        "residuals": residual_summary(loss[fitted_rows], fitted, "raw", len(ISOFLOP_PARAMS)),
        "bootstrap": {"resamples": bootstrap, "seed": seed, "failed": failed, "samples": samples},
        "warnings": warnings,
    }
    warnings[:0] = duplicate_rows(C, N, loss)
    warnings += fit_warnings(result, ("a", "b", "gamma"))
    if target_C is not None:
        result["at_target"] = isoflop_allocation(result, target_C)
    return to_jsonable(result)


def _budgets(labels, C, N, D, loss, window, warnings) -> list[dict]:
    """One dict per budget with its parabola and the rows it was fitted to, sorted by compute;
    budgets too small are skipped."""
    log_n = np.log(N)

    def compute_of(rows):
        return float(np.exp(np.log(C[rows]).mean()))

    groups = []
    for label, rows, parabola in parabolas_by_group(
        labels, log_n, loss, lambda rows: f"budget C={compute_of(rows):.3g}", warnings, window
    ):
        u = log_n[rows]
        residual = loss[rows] - np.polyval(parabola.coefficients[::-1], u)
        slope, intercept = np.polyfit(u, np.log(D[rows]), 1)
        groups.append({
            "label": label, "C": compute_of(np.flatnonzero(labels == label)), "rows": rows,
            "n_runs": int((labels == label).sum()), "u": u, "loss": loss[rows],
            "parabola": parabola, "rss": float(residual @ residual),
            "log_d_line": lambda x, s=slope, i=intercept: s * x + i,
        })
    return sorted(groups, key=lambda g: g["C"])


def _profile_laws(log_c, log_n, log_d, loss_opt, curvature):
    """Point estimates of ISOFLOP_PARAMS and their OLS 95% intervals across budgets."""
    (log_kn, a), ci_n = ols_line(log_c, log_n)
    (log_kd, b), ci_d = ols_line(log_c, log_d)
    (log_kl, slope_l), ci_l = ols_line(log_c, np.log(loss_opt))
    params = {
        "a": a, "k_N": np.exp(log_kn), "b": b, "k_D": np.exp(log_kd),
        "gamma": -slope_l, "k_L": np.exp(log_kl), "kappa": float(np.exp(np.log(curvature).mean())),
    }
    ci = {
        "a": ci_n[1], "k_N": np.exp(ci_n[0]), "b": ci_d[1], "k_D": np.exp(ci_d[0]),
        "gamma": -ci_l[1][::-1], "k_L": np.exp(ci_l[0]), "kappa": [np.nan, np.nan],
    }
    return params, ci


def _bootstrap(usable: list[dict], n_resamples: int, seed: int) -> dict[str, np.ndarray]:
    """ISOFLOP_PARAMS per resample of runs within the usable budgets (nan where one fails)."""
    rows = np.concatenate([g["rows"] for g in usable])
    strata = np.concatenate([np.full(len(g["rows"]), i) for i, g in enumerate(usable)])
    u_all = np.concatenate([g["u"] for g in usable])
    counts = resample_counts(len(rows), n_resamples, seed, strata=strata, min_distinct=MIN_DISTINCT)
    vertices, at_vertex, curvature, bracketed = [], [], [], []
    for i, g in enumerate(usable):
        members = strata == i
        vertex, y_opt, curv, ok = resampled_vertices(u_all[members], g["loss"], counts[:, members])
        vertices.append(vertex)
        at_vertex.append(y_opt)
        curvature.append(curv)
        bracketed.append(ok & (y_opt > 0))
    vertices = np.column_stack(vertices)
    mask = np.column_stack(bracketed)
    log_d = np.column_stack([g["log_d_line"](vertices[:, i]) for i, g in enumerate(usable)])
    log_c = np.log([g["C"] for g in usable])
    with np.errstate(divide="ignore", invalid="ignore"):
        line_n = masked_least_squares(log_c, vertices, mask)
        line_d = masked_least_squares(log_c, log_d, mask)
        line_l = masked_least_squares(log_c, np.log(np.column_stack(at_vertex)), mask)
        log_curv = np.where(mask, np.log(np.column_stack(curvature)), 0.0)
        kappa = np.exp(log_curv.sum(axis=1) / mask.sum(axis=1))
    return {
        "a": line_n[:, 1], "k_N": np.exp(line_n[:, 0]), "b": line_d[:, 1], "k_D": np.exp(line_d[:, 0]),
        "gamma": -line_l[:, 1], "k_L": np.exp(line_l[:, 0]), "kappa": kappa,
    }


def _budget_summary(g: dict) -> dict:
    parabola = g["parabola"]
    low, high = parabola.vertex_ci
    return {
        "budget": g["label"],
        "C": g["C"],
        "n_runs": g["n_runs"],
        "n_runs_fitted": len(g["rows"]),
        "N_opt": np.exp(parabola.vertex),
        "D_opt": np.exp(g["log_d_line"](parabola.vertex)),
        "loss_opt": parabola.y_at_vertex,
        "ci95": {"N_opt": [np.exp(low), np.exp(high)]},
        "coefficients": {"c0": parabola.coefficients[0], "c1": parabola.coefficients[1],
                         "c2": parabola.coefficients[2], "form": "loss = c0 + c1 ln N + c2 (ln N)^2"},
        "minimum_at_edge": parabola.minimum_at_edge,
    }


def profile_loss(params: dict, N: np.ndarray, C: np.ndarray) -> np.ndarray:
    """Loss from IsoFLOP `params` ({name: scalar or (K,) array}) at sizes `N` and computes `C` (m,).

    Returns (K, m): one row per parameter set.
    """
    p = {name: np.atleast_1d(np.asarray(params[name], dtype=float))[:, None] for name in ISOFLOP_PARAMS}
    log_c = np.log(np.asarray(C, dtype=float))[None, :]
    log_n_opt = np.log(p["k_N"]) + p["a"] * log_c
    loss_opt = p["k_L"] * np.exp(-p["gamma"] * log_c)
    return loss_opt + p["kappa"] * (np.log(np.asarray(N, dtype=float))[None, :] - log_n_opt) ** 2


def profile_allocation(params: dict, compute) -> dict[str, np.ndarray]:
    """N*, D* and the optimal loss from IsoFLOP `params` ({name: scalar or (K,) array}) at `compute` (m,).

    Returns {"N_opt", "D_opt", "loss"}, each (K, m): one row per parameter set.
    """
    p = {name: np.atleast_1d(np.asarray(params[name], dtype=float))[:, None]
         for name in ("k_N", "a", "k_D", "b", "k_L", "gamma")}
    compute = np.atleast_1d(np.asarray(compute, dtype=float))[None, :]
    return {
        "N_opt": p["k_N"] * compute ** p["a"],
        "D_opt": p["k_D"] * compute ** p["b"],
        "loss": p["k_L"] * compute ** -p["gamma"],
    }


def isoflop_allocation(law: dict, compute: float) -> dict:
    """N*, D* and the optimal loss at `compute` from a fitted IsoFLOP law, with 95% intervals."""
    samples = law["bootstrap"]["samples"]
    point = {name: values[0, 0] for name, values in profile_allocation(law["params"], compute).items()}
    spread = profile_allocation(samples, compute) if samples is not None else None
    ci = {name: (percentile_interval(spread[name][:, 0]) if spread else None) for name in point}
    return to_jsonable({"C": float(compute), **point, "ci95": ci})
