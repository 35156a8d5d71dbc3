"""Loss-to-loss prediction between validation domains (Brandfonbrener et al. 2024): a shifted power law

    L_y = K (L_x - E_x)^kappa + E_y,

from the loss on one distribution (x: the study's mixed validation set) to the loss on another (y: one
domain's validation set), over the same models. E_x and E_y are the irreducible losses of each distribution's
own Chinchilla fit (as in the paper); K and kappa then follow by least squares in log space, with percentile
intervals from resampling runs. A held-out check fits on every budget but the largest and predicts that
budget's domain losses from its mixed losses: the use the law is for (one cheap measurement, another loss).
"""

from __future__ import annotations

import numpy as np

from isoflop.errors import UserError
from isoflop.fit.bootstrap import percentile_interval, resample_counts
from isoflop.fit.power import fit_chinchilla

FORM = "L_y = K (L_x - E_x)^kappa + E_y"


def fit_transfer(N, D, budget, loss_x, loss_y, *, bootstrap: int = 0, seed: int = 0,
                 held_out_check: bool = True, shift_x: float | None = None) -> dict:
    """Fit the shifted power law from `loss_x` to `loss_y` (per run, with the runs' N, D and budgets).

    Returns params (K, kappa, E_x, E_y), 95% intervals of K and kappa (E_x and E_y are held at their own fits),
    the residual rms in nats and `held_out` (fitted on all budgets but the largest, predicting it). `shift_x`:
    E_x when the caller has fitted it already (the same for every domain)."""
    N, D, budget = (np.asarray(values, dtype=float) for values in (N, D, budget))
    loss_x, loss_y = np.asarray(loss_x, dtype=float), np.asarray(loss_y, dtype=float)
    shift_x = fit_chinchilla(N, D, loss_x)["params"]["E"] if shift_x is None else shift_x
    shift_y = fit_chinchilla(N, D, loss_y)["params"]["E"]
    usable = (loss_x > shift_x) & (loss_y > shift_y)
    if usable.sum() < 3:
        raise UserError("loss-to-loss law: fewer than 3 runs lie above both irreducible losses")
    log_x, log_y = np.log(loss_x[usable] - shift_x), np.log(loss_y[usable] - shift_y)
    kappa, log_k = np.polyfit(log_x, log_y, 1)
    fitted = np.exp(log_k) * np.exp(kappa * log_x) + shift_y
    ci = {"K": None, "kappa": None}
    if bootstrap:
        counts = resample_counts(len(log_x), bootstrap, seed, min_distinct=2)
        lines = np.array([np.polyfit(log_x, log_y, 1, w=np.sqrt(row)) for row in counts.astype(float)])
        ci = {"K": percentile_interval(np.exp(lines[:, 1])).tolist(), "kappa": percentile_interval(lines[:, 0]).tolist()}
    result = {
        "form": FORM,
        "params": {"K": float(np.exp(log_k)), "kappa": float(kappa), "E_x": float(shift_x), "E_y": float(shift_y)},
        "ci95": ci,
        "n_points": int(usable.sum()),
        "rms_nats": float(np.sqrt(np.mean((fitted - loss_y[usable]) ** 2))),
    }
    largest = budget.max()
    train = budget < largest
    if held_out_check and len(np.unique(budget[train])) >= 2:
        try:
            p = fit_transfer(N[train], D[train], budget[train], loss_x[train], loss_y[train],
                             held_out_check=False)["params"]
        except UserError:
            return result
        test = ~train
        predicted = p["K"] * np.maximum(loss_x[test] - p["E_x"], 0.0) ** p["kappa"] + p["E_y"]
        errors = predicted / loss_y[test] - 1.0
        result["held_out"] = {"budget": float(largest), "n_runs": int(test.sum()),
                              "mean_abs_rel_error": float(np.mean(np.abs(errors))), "bias": float(np.mean(errors))}
    return result


def fit_domains(runs: dict, domains: dict[str, np.ndarray], *, bootstrap: int, seed: int,
                warnings: list[str]) -> dict:
    """`fit_transfer` from the mixed loss (`runs["loss"]`) to every domain's loss in `domains` (name -> per run)."""
    laws = {}
    try:
        shift_x = fit_chinchilla(runs["N"], runs["D"], runs["loss"])["params"]["E"]
    except UserError as err:
        warnings.append(f"loss-to-loss: not fitted: {err}")
        return laws
    for name, loss_y in domains.items():
        try:
            laws[name] = fit_transfer(runs["N"], runs["D"], runs["budget"], runs["loss"], loss_y,
                                      bootstrap=bootstrap, seed=seed, shift_x=shift_x)
        except UserError as err:
            warnings.append(f"loss-to-loss ({name}): not fitted: {err}")
    return laws
