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
from isoflop.fit.calibrate import (
    GROUP_DEX,
    MAX_FOLDS,
    MIN_TRAIN_GROUPS,
    calibration,
    calibration_warnings,
    law_inputs,
    noise_scale,
    reach_of,
    reach_variable,
)
from isoflop.fit.predict import predict_intervals, predict_point

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


def calibrate(law: dict, runs: dict[str, np.ndarray], refit: Callable[[np.ndarray], dict]) -> dict:
    """`law` with its `calibration` (see the module docstring) from a rolling-origin backtest.

    `runs` holds the runs `law` was fitted to (its inputs and "loss"); `refit(mask)` returns the same
    law fitted to the runs in `mask` (without bootstrap: only the point predictions are scored), or
    raises UserError where those runs cannot be fitted. Adds warnings for an interpolating fit and for
    levels the backtest is too small to calibrate."""
    loss = np.asarray(runs["loss"], dtype=float)
    x = np.log10(reach_of(law, **{key: runs.get(key) for key in ("N", "D", "C")}))
    groups = np.round(x / GROUP_DEX)
    reach, errors = [], []
    for cutoff in np.unique(groups)[MIN_TRAIN_GROUPS - 1:-1][-MAX_FOLDS:]:
        train = groups <= cutoff
        inputs = {key: values[~train] for key, values in law_inputs(law, runs).items()}
        try:
            with np.errstate(all="ignore"):  # a fold on a few small runs may fit badly: its errors say so
                fold = refit(train)
                predicted = predict_point(fold, **inputs)
        except UserError:
            continue
        if not (np.isfinite(predicted).all() and (predicted > 0).all()):
            continue
        reach.append(np.abs(x[~train] - x[train].mean()))
        errors.append(np.log(loss[~train] / predicted))
    return _attach(law, runs, float(x.mean()), reach, errors)


def calibrate_from_backtest(law: dict, runs: dict[str, np.ndarray], backtest: dict) -> dict:
    """`law` with its `calibration` from a study's expanding-window backtest (`isoflop.fit.backtest`, folds by
    budget) instead of a new one: the same errors, each fold's centre the mean log10 of its training budgets."""
    reach, errors = [], []
    for fold in backtest.get("folds", []):
        if "predictions" not in fold:
            continue
        predictions = fold["predictions"]
        centre = float(np.mean(np.log10(fold["train_budgets"])))
        reach.append(np.abs(np.log10(np.asarray(predictions["budget"], dtype=float)) - centre))
        errors.append(np.log(np.asarray(predictions["observed"], dtype=float)
                             / np.asarray(predictions["predicted"], dtype=float)))
    centre = float(np.mean(np.log10(np.unique(runs["budget"]))))
    return _attach(law, runs, centre, reach, errors)


def _attach(law: dict, runs: dict[str, np.ndarray], centre: float, reach: list, errors: list) -> dict:
    """`law` with the calibration of backtest `errors` at `reach` (lists of arrays) and its warnings."""
    loss = np.asarray(runs["loss"], dtype=float)
    fitted = predict_point(law, **law_inputs(law, runs))
    law["calibration"] = calibration(np.concatenate(reach) if reach else np.zeros(0),
                                     np.concatenate(errors) if errors else np.zeros(0),
                                     noise_scale(law, np.log(loss / fitted), float(np.mean(loss))),
                                     reach_variable(law), centre)
    law["warnings"] = law.get("warnings", []) + calibration_warnings(law)
    return law
