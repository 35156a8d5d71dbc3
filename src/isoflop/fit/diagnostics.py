"""What the fitted range itself says about trusting a law: run-to-run (seed) noise from replicated grid
points, and lack of fit, a curvature of the residuals against log C.

Seed noise is the floor under every comparison: two approaches, two mixtures or two studies whose
predicted losses differ by less than about 2 sqrt(2) run-to-run standard deviations are not told apart
by one more run each. Lack of fit: a power law in C is a line in log-log space, so residuals that bend
against ln C (power laws bend at small scale; "Honey, I Shrunk the Language" sees it below about 1e15
FLOPs, where CPU studies live) say the form is wrong there, and how fast that bend grows says how far
beyond the largest budget its predictions can be trusted.
"""

from __future__ import annotations

import numpy as np

HORIZON_LIMIT = 1e6  # the farthest factor beyond the largest budget a trust horizon is stated for


def seed_noise(budget: np.ndarray, N: np.ndarray, loss: np.ndarray) -> dict | None:
    """The pooled within-point standard deviation of the loss over grid points (budget, N) trained with 2 or
    more seeds, raw (nats) and of log loss, with a 95% chi-square interval; None without replicates."""
    from scipy import stats

    keys = np.column_stack([np.asarray(budget, dtype=float), np.asarray(N, dtype=float)])
    _, group, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    group = group.ravel()
    replicated = counts[group] >= 2
    if not replicated.any():
        return None
    loss = np.asarray(loss, dtype=float)
    points = []
    sum_sq = {"raw": 0.0, "log": 0.0}
    for label in np.unique(group[replicated]):
        members = group == label
        values = loss[members]
        sum_sq["raw"] += float(((values - values.mean()) ** 2).sum())
        sum_sq["log"] += float(((np.log(values) - np.log(values).mean()) ** 2).sum())
        points.append({"budget": float(keys[members][0, 0]), "N": float(keys[members][0, 1]),
                       "n_seeds": int(members.sum()), "mean": float(values.mean()),
                       "sd": float(values.std(ddof=1))})
    dof = int(sum(point["n_seeds"] - 1 for point in points))
    sd, sd_log = np.sqrt(sum_sq["raw"] / dof), np.sqrt(sum_sq["log"] / dof)
    # dof s^2 / sigma^2 ~ chi2(dof): the interval of sigma
    scale = np.sqrt(dof / stats.chi2.ppf([0.975, 0.025], dof))
    return {"sd": sd, "sd_log": sd_log, "ci95_sd": (sd * scale).tolist(), "dof": dof,
            "n_points": len(points), "points": points,
            "method": "pooled standard deviation of runs that differ only in their seed"}


def noise_sd(noise: dict | None, scale: str) -> float | None:
    """The run-to-run standard deviation on a law's residual `scale` ("log" or "raw")."""
    if not noise:
        return None
    return noise["sd_log"] if scale == "log" else noise["sd"]


def lack_of_fit(log_c: np.ndarray, residuals: np.ndarray, noise: float | None, *, level: float = 0.95) -> dict | None:
    """Tests of curvature in a law's `residuals` (log observed - log fitted) against `log_c` (ln C per run).

    - quadratic: OLS of the residuals on 1, u, u^2 (u = ln C centred); the t test of the u^2 term;
    - runs: the Wald-Wolfowitz runs test on the residuals' signs in order of C (too few runs: they cluster,
      which any bend produces).
    `curved` is True when the quadratic term is significant at 1 - `level`. The trust horizon
    (`trust_factor`) is the factor above the largest C at which the residual trend, continued past the edge
    of the fitted range, moves by more than 1.96 `noise` (the run-to-run standard deviation, else the
    residuals'): out of a single run's 95% band.
    beyond it the form's own misfit exceeds what a run's noise would hide. `trust_factor_cautious` does the
    same with the u^2 term at the far end of its interval: the bend the data cannot rule out. A factor is
    None where the trend stays within the noise up to HORIZON_LIMIT. None with fewer than 3 distinct
    computes (no curvature to see).
    """
    from scipy import stats

    log_c, residuals = np.asarray(log_c, dtype=float), np.asarray(residuals, dtype=float)
    if len(np.unique(np.round(log_c, 6))) < 3 or len(log_c) < 5:
        return None
    centre = log_c.mean()
    u = log_c - centre
    design = np.column_stack([np.ones_like(u), u, u**2])
    coef, *_ = np.linalg.lstsq(design, residuals, rcond=None)
    dof = len(u) - 3
    rss = float(((residuals - design @ coef) ** 2).sum())
    cov = rss / dof * np.linalg.inv(design.T @ design)
    se = float(np.sqrt(cov[2, 2]))
    t_value = float(coef[2] / se) if se > 0 else float("inf")
    p_value = float(2 * stats.t.sf(abs(t_value), dof))
    half = float(stats.t.ppf(0.5 + level / 2, dof)) * se
    c2_far = coef[2] + np.sign(coef[2] or 1.0) * half
    sd = noise if noise else float(np.sqrt(rss / dof))
    horizon = _horizon(coef[1], coef[2], u.max(), sd)
    cautious = _horizon(coef[1], c2_far, u.max(), sd)
    return {
        "quadratic": {"c2": float(coef[2]), "se": se, "ci95": [float(coef[2] - half), float(coef[2] + half)],
                      "t": t_value, "p": p_value, "form": "residual = c0 + c1 u + c2 u^2, u = ln C - mean ln C"},
        "runs": _runs_test(residuals[np.argsort(log_c, kind="stable")]),
        "curved": bool(p_value < 1 - level),
        "noise_sd": sd,
        "trust_factor": horizon,
        "trust_C": None if horizon is None else float(np.exp(log_c.max()) * horizon),
        "trust_factor_cautious": cautious,
    }


def _horizon(c1: float, c2: float, u_max: float, sd: float) -> float | None:
    """The factor k above exp(u_max) where the trend c1 u + c2 u^2 has moved by 1.96 `sd` from its value at u_max;
    None past HORIZON_LIMIT."""
    factors = np.geomspace(1.0, HORIZON_LIMIT, 600)
    x = np.log(factors)
    beyond = np.abs(c1 * x + c2 * (2 * u_max * x + x**2)) > 1.96 * sd
    return float(factors[np.argmax(beyond)]) if beyond.any() else None


def _runs_test(ordered: np.ndarray) -> dict:
    """Wald-Wolfowitz runs test of the signs of `ordered` residuals (normal approximation, one-sided: too few)."""
    from scipy import stats

    signs = ordered[ordered != 0] > 0
    positive, negative = int(signs.sum()), int((~signs).sum())
    runs = int(1 + np.count_nonzero(signs[1:] != signs[:-1])) if len(signs) else 0
    total = positive + negative
    if positive == 0 or negative == 0:
        return {"runs": runs, "expected": float(runs), "p": 1.0 if total < 2 else 0.0}
    expected = 1 + 2 * positive * negative / total
    variance = 2 * positive * negative * (2 * positive * negative - total) / (total**2 * (total - 1))
    z = (runs - expected) / np.sqrt(variance) if variance > 0 else 0.0
    return {"runs": runs, "expected": float(expected), "p": float(stats.norm.cdf(z))}


def verdict(name: str, test: dict | None) -> str:
    """One sentence on a law's lack-of-fit `test`: whether the fitted range shows curvature and how far to trust
    the law beyond it."""
    if test is None:
        return f"{name}: too few budgets to test the residuals for curvature."
    quad = test["quadratic"]
    shows = (f"the residuals bend against log C (quadratic term {quad['c2']:+.2g}, p = {quad['p']:.2g})"
             if test["curved"] else
             f"no significant curvature of the residuals against log C (quadratic term p = {quad['p']:.2g}, "
             f"runs test p = {test['runs']['p']:.2g})")
    def factor(value):
        return f"beyond {HORIZON_LIMIT:.0e}x" if value is None else f"at {value:.3g}x"

    horizon = (f"continued past the largest budget, the residual trend leaves a run's 95% noise band (1.96 x "
               f"{test['noise_sd']:.2g} in log loss) {factor(test['trust_factor'])} the largest budget, and the strongest bend the data "
               f"allow does {factor(test['trust_factor_cautious'])}: trust the law up to about "
               f"{_fmt_factor(test['trust_factor_cautious'] if not test['curved'] else test['trust_factor'])} "
               "the largest budget")
    return f"{name}: {shows}; {horizon}."


def _fmt_factor(value: float | None) -> str:
    return f"{HORIZON_LIMIT:.0e}x" if value is None else f"{value:.3g}x"
