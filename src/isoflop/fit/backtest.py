"""Backtests: does a law fitted on the small budgets predict the larger ones, within its intervals?

An expanding-window rollout (the time-series backtest, with compute for time): fold k fits the
law on the k smallest budgets and predicts every run of every larger budget. Per fold it reports
the mean |relative error|, the signed bias (mean relative error: a law that keeps under-predicting
has a negative bias however small its errors), and how many runs fall inside the 90% and 95%
prediction intervals. An honest law's coverage is near 90% and 95%; far less means its intervals
are too narrow to plan with.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from isoflop.errors import UserError
from isoflop.fit.predict import predict_intervals

LEVELS = (0.90, 0.95)
MIN_TRAIN_BUDGETS = 2  # the fewest budgets an IsoFLOP law (two vertices) or a Chinchilla fit can use


def backtest(
    data: dict[str, np.ndarray],
    fit: Callable[[dict[str, np.ndarray]], dict],
    inputs: tuple[str, ...],
    *,
    seed: int = 0,
) -> dict:
    """Expanding-window backtest of the law `fit` returns for a subset of `data`.

    `data` maps "budget", "loss" and the law's `inputs` (e.g. ("N", "D")) to per-run arrays; `fit`
    takes such a dict (the training runs) and returns a fitted law's dict. Returns `folds` (per fold:
    the budgets trained on, runs predicted, mean_abs_rel_error, bias, coverage90, coverage95,
    `factor` (the largest predicted budget over the largest fitted) and `predictions` (per predicted
    run: budget, observed, predicted and its 95% prediction interval), or `error` where the law could
    not be fitted) and the same measures over every fold's predictions.
    """
    budgets = np.unique(data["budget"])
    folds, errors, inside = [], [], {level: [] for level in LEVELS}
    for k in range(MIN_TRAIN_BUDGETS, len(budgets)):
        train_mask = data["budget"] <= budgets[k - 1]
        train = {key: values[train_mask] for key, values in data.items()}
        fold = {"train_budgets": budgets[:k].tolist(), "n_train": int(train_mask.sum()),
                "n_predicted": int((~train_mask).sum()), "factor": float(budgets[-1] / budgets[k - 1])}
        try:
            law = fit(train)
        except UserError as err:
            folds.append({**fold, "error": str(err)})
            continue
        observed = data["loss"][~train_mask]
        columns = {key: data[key][~train_mask] for key in inputs}
        results = {level: predict_intervals(law, **columns, level=level, seed=seed) for level in LEVELS}
        if not all(np.isfinite(np.concatenate([r["predicted"], r["pred_lo"], r["pred_hi"]])).all()
                   for r in results.values()):
            # a law this poorly determined (e.g. 5 parameters from two budgets) is not a prediction at all
            folds.append({**fold, "error": "the law fitted on these budgets predicts non-finite losses"})
            continue
        for level, result in results.items():
            hit = (result["pred_lo"] <= observed) & (observed <= result["pred_hi"])
            fold[f"coverage{round(100 * level)}"] = float(hit.mean())
            inside[level].append(hit)
        result = results[LEVELS[-1]]  # the 95% interval is drawn
        rel = result["predicted"] / observed - 1.0
        fold.update(mean_abs_rel_error=float(np.mean(np.abs(rel))), bias=float(np.mean(rel)),
                    predictions={"budget": data["budget"][~train_mask].tolist(), "observed": observed.tolist(),
                                 "predicted": result["predicted"].tolist(), "pred_lo95": result["pred_lo"].tolist(),
                                 "pred_hi95": result["pred_hi"].tolist()})
        errors.append(rel)
        folds.append(fold)
    if not errors:
        return {"folds": folds, "n_predictions": 0}
    pooled = np.concatenate(errors)
    return {
        "folds": folds,
        "n_predictions": len(pooled),
        "mean_abs_rel_error": float(np.mean(np.abs(pooled))),
        "bias": float(np.mean(pooled)),
        **{f"coverage{round(100 * level)}": float(np.concatenate(hits).mean()) for level, hits in inside.items()},
    }
