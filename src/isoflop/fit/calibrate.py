"""Prediction intervals calibrated on extrapolation: how wrong has this law been when it reached this far?

A law's residuals measure noise inside the fitted range; a forecast is made outside it, where the
law's form, not the noise, is what fails. So the interval's width comes from the law's own
out-of-sample errors: a rolling-origin backtest refits the law on the runs below each cutoff of a
"reach variable" (log10 compute for the laws in N and D, a curve's own variable) and records each
larger run's log error e and its distance r (decades) from the centre of the fold's fitted runs.
The error scale is modelled as

    s(r) = sqrt(s0^2 + (g1 r)^2 + (g2 r^2)^2)

with s0 the full fit's noise (the robust scale of its inflated residuals, never below the measured
seed noise), g1 the growth of parameter error (linear in r) and g2 that of a misspecified form's bias
(quadratic in r: a line fitted to a curve misses by about the squared distance from the fitted
centre), fitted by non-negative least squares to e^2 - s0^2. The scores |e| / s(r) give a
split-conformal quantile q (the ceil((n+1) level)-th smallest of n), and a forecast at distance r
gets point * exp(+-q s(r)), joined with the law's own interval (bootstrap fits plus resampled noise:
parameter uncertainty and seed noise), so it is never narrower than that.

Too few backtest errors for a level ((n+1) level > n) is an explicit state: the interval uses the
prior s0 >= PRIOR_BASE_SD and g1 >= PRIOR_GROWTH[0], times UNCALIBRATED_WIDEN, and a warning says so.
A fit that interpolates its points (residual dof <= 1, or residuals far below the seed noise) is
flagged: its own residuals say nothing about the noise.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np


# The variable a forecast "reaches" along, per law: compute, the direction the larger runs lie in (for the
# over-trained law too: on Gadre et al.'s runs, folds by N leave too few runs beyond each cutoff).
REACH_VARIABLE = {"chinchilla": "C", "overtrained": "C", "isoflop": "C"}
GROUP_DEX = 0.05  # runs whose reach variables lie this close (log10) form one step of the rolling origin
MAX_FOLDS = 6  # the largest cutoffs only: the folds whose fits are most like the full one
MIN_TRAIN_GROUPS = 2  # a fold fitted at one value of the reach variable cannot tell the law's direction
# The "too few points to calibrate" state: a deliberately wide prior. 1% is about the seed noise of small
# runs; 3% per decade of compute is about the error growth seen extrapolating Gadre et al.'s runs.
PRIOR_BASE_SD = 0.01
PRIOR_GROWTH = (0.03, 0.0)
UNCALIBRATED_WIDEN = 1.5
INTERPOLATION_SHARE = 0.3  # residuals below this share of the seed noise: the fit threads its points


def reach_variable(law: dict) -> str:
    """The variable `law`'s forecasts reach along (see REACH_VARIABLE)."""
    return law["variable"] if law.get("law") == "power" else REACH_VARIABLE[law["law"]]


def law_inputs(law: dict, runs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The keyword inputs `predict` takes for `law`, from `runs` (N, D, C or a curve's variable)."""
    kind = law.get("law")
    if kind == "power":
        return {law["variable"]: runs[law["variable"]]}
    if kind == "isoflop":
        return {"N": runs["N"], "C": runs["C"]}
    return {"N": runs["N"], "D": runs["D"]}


def reach_of(law: dict, N=None, D=None, C=None) -> np.ndarray:
    """The reach variable's values at prediction inputs (C = 6ND where only N and D are given)."""
    name = reach_variable(law)
    given = {"N": N, "D": D, "C": C}
    if name == "C" and given["C"] is None:
        return 6.0 * np.asarray(given["N"], dtype=float) * np.asarray(given["D"], dtype=float)
    return np.asarray(given[name], dtype=float)


def noise_scale(law: dict, log_residuals: np.ndarray, mean_loss: float) -> float:
    """s0: the fit's log residuals' robust scale (1.4826 MAD: one badly fitted run is the backtest's business,
    not the noise's), inflated for the parameters' share of the points, never below the seed noise (moved to
    the log scale by `mean_loss` where the law's residuals are raw) where it was measured."""
    info = law.get("residuals") or {}
    inflation = info.get("inflation") or 1.0
    rms = 1.4826 * float(np.median(np.abs(log_residuals))) * inflation if len(log_residuals) else 0.0
    seed_sd = info.get("seed_sd") or 0.0
    return max(rms, seed_sd if info.get("scale") == "log" else seed_sd / mean_loss)


def calibration(reach: np.ndarray, errors: np.ndarray, base_sd: float, variable: str, centre: float) -> dict:
    """The error model and conformal scores from backtest `errors` (log observed / predicted) at `reach`
    (decades from the centre of each fold's fitted runs); `centre` is log10 of the full fit's centre."""
    from scipy.optimize import nnls

    reach, errors = np.asarray(reach, dtype=float), np.asarray(errors, dtype=float)
    # a fold whose law predicted no finite loss (a degenerate fit) is dropped, as `calibrate` drops its fold
    finite = np.isfinite(reach) & np.isfinite(errors)
    reach, errors = reach[finite], errors[finite]
    # a degenerate law's own residuals can be non-finite: its noise is then unknown, not a reason to fail
    base = max(base_sd, 1e-6) if np.isfinite(base_sd) else 1e-6
    growth = np.zeros(2)
    if len(errors) and np.any(reach > 0):
        # e^2 = s0^2 + g1^2 r^2 + g2^2 r^4: parameter error grows like r, a misspecified form's bias like r^2
        growth = np.sqrt(nnls(np.column_stack([reach**2, reach**4]), errors**2 - base**2)[0])
    scores = np.sort(np.abs(errors) / error_scale(reach, base, growth))
    return {"variable": variable, "log10_centre": centre, "base_sd": base, "growth": growth.tolist(),
            "n_errors": len(errors), "max_reach": float(reach.max()) if len(reach) else 0.0,
            "scores": scores.tolist()}


def error_scale(reach: np.ndarray, base: float, growth) -> np.ndarray:
    """s(r) = sqrt(s0^2 + (g1 r)^2 + (g2 r^2)^2)."""
    return np.sqrt(base**2 + (growth[0] * reach) ** 2 + (growth[1] * reach**2) ** 2)


def conformal_quantile(scores, level: float) -> float | None:
    """The split-conformal quantile of `scores` at `level`, or None where there are too few for it."""
    n = len(scores)
    rank = int(np.ceil((n + 1) * level))
    return float(np.sort(scores)[rank - 1]) if 0 < rank <= n else None


def calibrated_interval(point: np.ndarray, reach_values: np.ndarray, calibration: dict,
                        level: float) -> tuple[np.ndarray, np.ndarray, bool]:
    """(low, high, calibrated) for predictions `point` at reach-variable values `reach_values`; calibrated
    is False in the "too few points to calibrate" state (the prior, widened)."""
    with np.errstate(divide="ignore"):
        reach = np.abs(np.log10(reach_values) - calibration["log10_centre"])
    quantile = conformal_quantile(calibration["scores"], level)
    base, growth = calibration["base_sd"], np.asarray(calibration["growth"])
    calibrated = quantile is not None
    if not calibrated:
        quantile = UNCALIBRATED_WIDEN * NormalDist().inv_cdf(0.5 + level / 2)
        base, growth = max(base, PRIOR_BASE_SD), np.maximum(growth, PRIOR_GROWTH)
    half = quantile * error_scale(reach, base, growth)
    return point * np.exp(-half), point * np.exp(half), calibrated


def calibration_warnings(law: dict) -> list[str]:
    """Warnings about how far `law`'s prediction intervals can be trusted."""
    warnings = []
    info = law.get("residuals") or {}
    dof = info.get("dof")
    seed_sd = info.get("seed_sd")
    values = np.asarray(info.get("values") or [], dtype=float)
    rms = float(np.sqrt(np.mean(values**2))) if len(values) else 0.0
    if dof is not None and dof <= 1:
        warnings.append(f"the fit interpolates its points (residual dof {dof}): its residuals say nothing "
                        "about the noise, so its intervals are not trusted")
    elif seed_sd and rms < INTERPOLATION_SHARE * seed_sd:
        warnings.append(f"the fit's residuals (RMS {rms:.2g}) lie far below the seed noise ({seed_sd:.2g}): "
                        "it threads its points, so its intervals are not trusted")
    scores = (law.get("calibration") or {}).get("scores")
    if scores is not None:
        short = [level for level in (0.9, 0.95) if conformal_quantile(scores, level) is None]
        if short:
            levels = " and ".join(f"{level:.0%}" for level in short)
            warnings.append(f"too few points to calibrate: the backtest gave {len(scores)} out-of-sample error(s), "
                            f"too few for {levels} intervals, which use a widened prior instead")
    return warnings
