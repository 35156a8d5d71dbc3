"""Predictions, with bootstrap intervals, from a fitted law's JSON dict."""

from __future__ import annotations

import numpy as np

from isoflop.errors import UserError
from isoflop.fit.bootstrap import percentile_interval
from isoflop.fit.constrained import FORMS
from isoflop.fit.isoflop import ISOFLOP_PARAMS, profile_loss
from isoflop.fit.laws import PowerSumLaw
from isoflop.fit.residuals import prediction_interval
from isoflop.fit.verdict import STUDY_LAWS, trusted_approach


def predict(law: dict, N=None, D=None, *, C=None) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Predicted loss and its 95% interval, (loss, (low, high)), for a law from any `fit_*`.

    Chinchilla and the over-trained law need N and D (D = C / 6N when only C is given); a
    one-variable curve needs its own variable; IsoFLOP profiles need N and C. Arrays broadcast;
    scalars give scalars. The interval is the percentile interval of the bootstrap fits'
    predictions (a confidence interval), nan when the law was fitted without bootstrap.
    """
    evaluate, shape = _evaluator(law, {"N": N, "D": D, "C": C})
    point, spread = _point_and_spread(law, evaluate)
    if spread is not None:
        low, high = percentile_interval(spread)
    else:
        low = high = np.full(point.size, np.nan)
    return _shaped(shape, point, low, high)


def predict_point(law: dict, N=None, D=None, *, C=None) -> np.ndarray:
    """The predicted loss alone, as a flat array: what a backtest scores, without evaluating every bootstrap fit
    at every input (a (B, m) array: 800 MB for 100 fits of a million-row table)."""
    evaluate, _ = _evaluator(law, {"N": N, "D": D, "C": C})
    return np.atleast_1d(_point_and_spread({**law, "bootstrap": {}}, evaluate)[0])


def predict_intervals(law: dict, N=None, D=None, *, C=None, level: float = 0.95, seed: int = 0) -> dict:
    """Point prediction with its confidence interval (the bootstrap fits' spread: where the law's
    mean loss lies) and its prediction interval (that plus a new run's noise, from the fit's
    residuals; see `isoflop.fit.residuals`), at `level`. A law with a `calibration` (see
    `isoflop.fit.calibrate`) widens the prediction interval to its out-of-sample errors at the
    forecast's reach. Returns flat arrays: predicted, conf_lo, conf_hi, pred_lo, pred_hi (conf_* nan
    without bootstrap) and calibrated (False: no calibration, or too few points for `level`)."""
    given = {"N": N, "D": D, "C": C}
    evaluate, shape = _evaluator(law, dict(given))
    point, spread = _point_and_spread(law, evaluate)
    conf = percentile_interval(spread, level) if spread is not None else np.full((2, point.size), np.nan)
    pred = prediction_interval(point, spread, law.get("residuals"), level, seed)
    calibrated = np.zeros(point.size, dtype=bool)
    if law.get("calibration"):
        from isoflop.fit.calibrate import calibrated_interval, reach_of

        reach = np.broadcast_to(reach_of(law, **given), shape).ravel()
        low, high, calibrated_level = calibrated_interval(point, reach, law["calibration"], level)
        pred = np.array([np.fmin(pred[0], low), np.fmax(pred[1], high)])
        calibrated[:] = calibrated_level
    return {"predicted": point, "conf_lo": conf[0], "conf_hi": conf[1], "pred_lo": pred[0], "pred_hi": pred[1],
            "calibrated": calibrated}


def _evaluator(law: dict, given: dict):
    """A function of parameters ({name: (K,) array}) to predictions (K, m) at the inputs, and their shape."""
    kind = law.get("law")
    if kind in FORMS:
        if given["N"] is not None and given["D"] is None and given["C"] is not None:
            given["D"] = np.asarray(given["C"], dtype=float) / (6.0 * np.asarray(given["N"], dtype=float))
        n, d = np.broadcast_arrays(*_need(given, ("N", "D"), kind))
        _check_positive(n, d)
        return (lambda p: FORMS[kind].predict(p, n.ravel(), d.ravel())), n.shape
    if kind == "isoflop":
        n, c = np.broadcast_arrays(*_need(given, ("N", "C"), kind))
        _check_positive(n, c)
        return (lambda p: profile_loss({name: p[name] for name in ISOFLOP_PARAMS}, n.ravel(), c.ravel())), n.shape
    if kind != "power":
        raise UserError(f"not a fitted law (law = {kind!r}); expected {', '.join(FORMS)}, power or isoflop")
    model = PowerSumLaw((law["variable"],), offset=law["offset"])
    columns = _need(given, model.variables, kind)
    shape = np.broadcast(*columns).shape
    x = np.column_stack([np.broadcast_to(col, shape).ravel() for col in columns])
    _check_positive(x)

    def evaluate(params):
        stacked = np.column_stack([np.atleast_1d(params[name]) for name in model.names])
        return model.predict(stacked, x)

    return evaluate, shape


def _need(given: dict, names: tuple[str, ...], kind: str) -> list[np.ndarray]:
    missing = [name for name in names if given[name] is None]
    if missing:
        raise UserError(f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} law predicts from {' and '.join(names)}; missing {', '.join(missing)}")
    return [np.asarray(given[name], dtype=float) for name in names]


def _check_positive(*arrays: np.ndarray) -> None:
    for array in arrays:
        if not (np.isfinite(array).all() and (array > 0).all()):
            raise UserError("prediction inputs must be positive and finite")


def _point_and_spread(law: dict, evaluate) -> tuple[np.ndarray, np.ndarray | None]:
    """The point predictions (m,) and the bootstrap fits' (B, m), or None without bootstrap."""
    point = evaluate({name: np.asarray(value, dtype=float) for name, value in law["params"].items()})[0]
    samples = law.get("bootstrap", {}).get("samples")
    if not samples:
        return point, None
    return point, evaluate({name: np.array(values, dtype=float) for name, values in samples.items()})


def _shaped(shape, point, low, high):
    """Reshape to the inputs' `shape`; scalars for scalar inputs."""
    point, low, high = (np.reshape(a, shape) for a in (point, low, high))
    if shape == ():
        return float(point), (float(low), float(high))
    return point, (low, high)


# ---- a study's laws.json: two laws, and the scores that say which extrapolates better ----------------


def is_study(data: dict) -> bool:
    """Whether `data` is a study's laws.json (one entry per law) rather than one fitted law."""
    return "law" not in data and any(name in data for name in STUDY_LAWS)


def study_law(laws: dict, name: str | None = None, source="laws.json") -> tuple[str, str]:
    """Which of a study's laws to predict with, and why: `name` when given, else the approach the study trusts
    (`isoflop.fit.verdict.trusted_approach`, the rule the report, its figures and MLflow follow). `source` names
    the file in errors."""

    fitted = [law for law in STUDY_LAWS if laws.get(law)]
    if name is not None:
        if name not in fitted:
            raise UserError(f"{source}: key {name!r} holds no fitted law (fitted: {', '.join(fitted) or 'none'})")
        return name, "chosen with --law"
    trusted, why = trusted_approach(laws)
    if trusted is None:
        raise UserError(f"{source}: keys {' and '.join(STUDY_LAWS)} hold no fitted law")
    return trusted, why
