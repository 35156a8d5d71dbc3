"""Prediction intervals: a law's uncertainty (its bootstrap fits) plus the noise of a new run.

A confidence interval says where the law's mean loss lies; a new run also carries its own noise
(seed, data order), which only the residuals measure. The prediction interval adds to each
bootstrap fit's prediction a residual drawn from the full fit's (the residual bootstrap of
Davison & Hinkley 1997, sec. 6.3), inflated by sqrt(n / (n - p)) because fitted residuals are
smaller than the noise by about the share of the points' freedom the p parameters used up.
Where replicated grid points measured the run-to-run noise (`seed_sd`, see `isoflop.fit.diagnostics`),
the resampled residuals are scaled up to at least that standard deviation: a law can fit a few points
more closely than a new seed would land.
"""

from __future__ import annotations

import numpy as np

from isoflop.fit.bootstrap import percentile_interval

STORED_RESIDUALS = 4096


def residual_summary(observed: np.ndarray, fitted: np.ndarray, scale: str, n_params: int) -> dict:
    """The residuals a prediction interval resamples: on `scale` "log" (log observed - log fitted,
    for laws fitted on log loss) or "raw" (observed - fitted), with their inflation factor.
    `seed_sd` (None here) is set by whoever knows the run-to-run noise (see `with_seed_noise`)."""
    observed, fitted = np.asarray(observed, dtype=float), np.asarray(fitted, dtype=float)
    values = np.log(observed) - np.log(fitted) if scale == "log" else observed - fitted
    dof = len(values) - n_params
    inflation = float(np.sqrt(len(values) / dof)) if dof > 0 else 1.0
    if len(values) > STORED_RESIDUALS:  # a large table keeps its residuals' quantiles, not a list of millions
        values = np.quantile(values, (np.arange(STORED_RESIDUALS) + 0.5) / STORED_RESIDUALS)
    return {"scale": scale, "values": values, "dof": dof, "inflation": inflation, "seed_sd": None}


def with_seed_noise(law: dict, noise: dict | None) -> dict:
    """`law` with the run-to-run standard deviation of `noise` (from `isoflop.fit.diagnostics.seed_noise`,
    or None) on its residuals' scale, which its prediction intervals then never fall below."""
    from isoflop.fit.diagnostics import noise_sd

    if law.get("residuals") is not None and noise:
        law["residuals"]["seed_sd"] = noise_sd(noise, law["residuals"]["scale"])
    return law


def prediction_interval(point: np.ndarray, spread: np.ndarray | None, residuals: dict | None,
                        level: float = 0.95, seed: int = 0) -> np.ndarray:
    """(2, m) prediction interval for predictions `point` (m,) with bootstrap predictions `spread`
    (B, m) or None, and the law's `residuals` (None: no noise known, the band is the confidence one)."""
    draws = spread if spread is not None else np.asarray(point, dtype=float)[None]
    if residuals is None or not len(residuals["values"]):
        return percentile_interval(draws, level)
    rng = np.random.default_rng(seed)
    pool = np.asarray(residuals["values"], dtype=float) * residuals["inflation"]
    floor = residuals.get("seed_sd")
    spread = float(np.sqrt(np.mean(pool**2)))
    if floor and spread < floor:
        pool = pool * (floor / spread) if spread > 0 else rng.normal(0.0, floor, 1000)
    # without bootstrap fits, the noise alone: many residual draws around the point prediction
    repeats = max(1, 2000 // len(draws))
    base = np.repeat(draws, repeats, axis=0)
    noise = rng.choice(pool, size=base.shape)
    noisy = base * np.exp(noise) if residuals["scale"] == "log" else base + noise
    return percentile_interval(noisy, level)
