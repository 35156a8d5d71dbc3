"""Hyperparameter laws from sweeps: the optimal learning rate (or batch size) as a power law in
model size and data, lr* = c N^p D^q (the form of Li et al. 2025, "Predictable Scale", Step Law).

Per (N, D) group, a parabola of loss in log lr locates lr* (Fieller's interval for the vertex); a
line in log space over the groups gives c, p and q. Intervals: percentiles over resamples of runs
within groups with `bootstrap` > 0, OLS t-intervals otherwise.
"""

from __future__ import annotations

import numpy as np

from isoflop.errors import UserError
from isoflop.fit.bootstrap import percentile_interval, resample_counts
from isoflop.fit.checks import positive_column, same_length, to_jsonable
from isoflop.fit.regression import (
    MIN_DISTINCT,
    masked_least_squares,
    ols_line,
    parabolas_by_group,
    require_rank,
    resampled_vertices,
)


def fit_lr_law(N, D, lr, loss, *, bootstrap: int = 0, seed: int = 0) -> dict:
    """Optimal learning rate lr* = c N^p D^q from a sweep (see `fit_hyperparameter_law`)."""
    return fit_hyperparameter_law(N, D, lr, loss, name="lr", bootstrap=bootstrap, seed=seed)


def fit_batch_law(N, D, batch, loss, *, bootstrap: int = 0, seed: int = 0) -> dict:
    """Optimal batch size batch* = c N^p D^q from a sweep (see `fit_hyperparameter_law`)."""
    return fit_hyperparameter_law(N, D, batch, loss, name="batch", bootstrap=bootstrap, seed=seed)


def fit_hyperparameter_law(N, D, setting, loss, *, name: str, bootstrap: int = 0, seed: int = 0) -> dict:
    """Fit `name`* = c N^p D^q from runs of a sweep over `setting` at several (N, D).

    Returns the law's `params` (c, p, q) and `ci95`, and per group the optimum, its interval and
    `minimum_at_edge` (the sweep does not bracket the optimum; such groups are left out of the law).
    """
    N, D = positive_column("N", N), positive_column("D", D)
    setting, loss = positive_column(name, setting), positive_column("loss", loss)
    same_length(N=N, D=D, **{name: setting}, loss=loss)
    groups, labels = np.unique(np.column_stack([N, D]), axis=0, return_inverse=True)
    labels = labels.ravel()
    warnings: list[str] = []
    summaries, usable = [], []
    for index, rows, parabola in parabolas_by_group(
        labels, np.log(setting), loss, lambda rows: f"group N={N[rows[0]]:.3g}, D={D[rows[0]]:.3g}", warnings
    ):
        n, d = groups[index]
        summaries.append({
            "N": n, "D": d, "n_runs": len(rows), f"{name}_opt": np.exp(parabola.vertex),
            "loss_opt": parabola.y_at_vertex,
            "ci95": {f"{name}_opt": list(np.exp(parabola.vertex_ci))},
            "minimum_at_edge": parabola.minimum_at_edge,
        })
        if parabola.minimum_at_edge:
            warnings.append(f"group N={n:.3g}, D={d:.3g}: the {name} sweep does not bracket the optimum; "
                            "left out of the law")
        else:
            usable.append((rows, np.log(setting[rows]), parabola.vertex, np.log([n, d])))
    if not usable:
        raise UserError(f"no (N, D) group's {name} sweep brackets an optimum; nothing to fit")
    log_nd = np.array([group[3] for group in usable])
    require_rank(log_nd, ("N", "D"), f"{name} law")
    (log_c, p, q), ci = ols_line(log_nd, np.array([group[2] for group in usable]))
    params = {"c": np.exp(log_c), "p": p, "q": q}
    ci95 = {"c": np.exp(ci[0]), "p": ci[1], "q": ci[2]}
    samples, failed = None, 0
    if bootstrap:
        samples = _bootstrap(usable, loss, log_nd, bootstrap, seed)
        failed = int((~np.isfinite(samples["p"])).sum())
        ci95 = {key: percentile_interval(values) for key, values in samples.items()}
    return to_jsonable({
        "law": f"{name}_optimum",
        "form": f"{name}_opt = c N^p D^q",
        "params": params,
        "ci95": ci95,
        "n_points": len(loss),
        "n_groups_used": len(usable),
        "groups": summaries,
        "bootstrap": {"resamples": bootstrap, "seed": seed, "failed": failed, "samples": samples},
        "warnings": warnings,
    })


def _bootstrap(usable, loss, log_nd, n_resamples, seed) -> dict[str, np.ndarray]:
    """(c, p, q) per resample of runs within the usable groups."""
    rows = np.concatenate([group[0] for group in usable])
    strata = np.concatenate([np.full(len(group[0]), i) for i, group in enumerate(usable)])
    counts = resample_counts(len(rows), n_resamples, seed, strata=strata, min_distinct=MIN_DISTINCT)
    vertices, masks = [], []
    for i, (group_rows, u, _, _) in enumerate(usable):
        vertex, _, _, bracketed = resampled_vertices(u, loss[group_rows], counts[:, strata == i])
        vertices.append(vertex)
        masks.append(bracketed)
    coefs = masked_least_squares(log_nd, np.column_stack(vertices), np.column_stack(masks))
    return {"c": np.exp(coefs[:, 0]), "p": coefs[:, 1], "q": coefs[:, 2]}
