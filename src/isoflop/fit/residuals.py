"""Prediction intervals: a law's uncertainty (its bootstrap fits) plus the noise of a new run.

A confidence interval says where the law's mean loss lies; a new run also carries its own noise
(seed, data order), which only the residuals measure. The prediction interval adds to each
bootstrap fit's prediction a residual drawn from the full fit's (the residual bootstrap of
Davison & Hinkley 1997, sec. 6.3), inflated by sqrt(n / (n - p)) because fitted residuals are
smaller than the noise by about the share of the points' freedom the p parameters used up.
"""

from __future__ import annotations

import numpy as np

from isoflop.fit.bootstrap import percentile_interval


def residual_summary(observed: np.ndarray, fitted: np.ndarray, scale: str, n_params: int) -> dict:
    """The residuals a prediction interval resamples: on `scale` "log" (log observed - log fitted,
    for laws fitted on log loss) or "raw" (observed - fitted), with their inflation factor."""
    observed, fitted = np.asarray(observed, dtype=float), np.asarray(fitted, dtype=float)
    values = np.log(observed) - np.log(fitted) if scale == "log" else observed - fitted
    dof = len(values) - n_params
    return {"scale": scale, "values": values, "dof": dof,
            "inflation": float(np.sqrt(len(values) / dof)) if dof > 0 else 1.0}


def prediction_interval(point: np.ndarray, spread: np.ndarray | None, residuals: dict | None,
                        level: float = 0.95, seed: int = 0) -> np.ndarray:
    """(2, m) prediction interval for predictions `point` (m,) with bootstrap predictions `spread`
    (B, m) or None, and the law's `residuals` (None: no noise known, the band is the confidence one)."""
    draws = spread if spread is not None else np.asarray(point, dtype=float)[None]
    if residuals is None or not len(residuals["values"]):
        return percentile_interval(draws, level)
    rng = np.random.default_rng(seed)
    pool = np.asarray(residuals["values"], dtype=float) * residuals["inflation"]
    # without bootstrap fits, the noise alone: many residual draws around the point prediction
    repeats = max(1, 2000 // len(draws))
    base = np.repeat(draws, repeats, axis=0)
    noise = rng.choice(pool, size=base.shape)
    noisy = base * np.exp(noise) if residuals["scale"] == "log" else base + noise
    return percentile_interval(noisy, level)
