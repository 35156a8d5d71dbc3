"""Predictions, with bootstrap intervals, from a fitted law's JSON dict."""

from __future__ import annotations

import numpy as np

from isoflop.errors import UserError
from isoflop.fit.bootstrap import percentile_interval
from isoflop.fit.isoflop import ISOFLOP_PARAMS, profile_loss
from isoflop.fit.laws import CHINCHILLA, PowerSumLaw


def predict(law: dict, N=None, D=None, *, C=None) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Predicted loss and its 95% interval, (loss, (low, high)), for a law from any `fit_*`.

    Chinchilla needs N and D (D = C / 6N when only C is given); a one-variable curve needs its own
    variable; IsoFLOP profiles need N and C. Arrays broadcast; scalars give scalars. The interval
    is the percentile interval of the bootstrap fits' predictions, nan when the law was fitted
    without bootstrap.
    """
    kind = law.get("law")
    given = {"N": N, "D": D, "C": C}
    if kind == "chinchilla":
        if N is not None and D is None and C is not None:
            given["D"] = np.asarray(C, dtype=float) / (6.0 * np.asarray(N, dtype=float))
        columns, model = _need(given, ("N", "D"), kind), CHINCHILLA
    elif kind == "power":
        columns = _need(given, (law["variable"],), kind)
        model = PowerSumLaw((law["variable"],), offset=law["offset"])
    elif kind == "isoflop":
        n, c = np.broadcast_arrays(*_need(given, ("N", "C"), kind))
        _check_positive(n, c)
        return _summarise(law, lambda p: profile_loss(p, n.ravel(), c.ravel()), ISOFLOP_PARAMS, n.shape)
    else:
        raise UserError(f"not a fitted law (law = {kind!r}); expected chinchilla, power or isoflop")
    shape = np.broadcast(*columns).shape
    x = np.column_stack([np.broadcast_to(col, shape).ravel() for col in columns])
    _check_positive(x)

    def evaluate(params):
        stacked = np.column_stack([np.atleast_1d(params[name]) for name in model.names])
        return model.predict(stacked, x)

    return _summarise(law, evaluate, model.names, shape)


def _need(given: dict, names: tuple[str, ...], kind: str) -> list[np.ndarray]:
    missing = [name for name in names if given[name] is None]
    if missing:
        raise UserError(f"a {kind} law predicts from {' and '.join(names)}; missing {', '.join(missing)}")
    return [np.asarray(given[name], dtype=float) for name in names]


def _check_positive(*arrays: np.ndarray) -> None:
    for array in arrays:
        if not (np.isfinite(array).all() and (array > 0).all()):
            raise UserError("prediction inputs must be positive and finite")


def _summarise(law: dict, evaluate, names, shape):
    """Point prediction and bootstrap percentile interval, reshaped to the inputs' `shape`."""
    point = evaluate({name: law["params"][name] for name in names})[0].reshape(shape)
    samples = law.get("bootstrap", {}).get("samples")
    if samples:
        spread = evaluate({name: np.array(samples[name], dtype=float) for name in names})
        low, high = percentile_interval(spread)
    else:
        low = high = np.full(point.size, np.nan)
    low, high = np.reshape(low, shape), np.reshape(high, shape)
    if shape == ():
        return float(point), (float(low), float(high))
    return point, (low, high)
