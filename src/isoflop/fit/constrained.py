"""Loss laws in (N, D) with a choice of objective and with fixed, tied or bounded parameters.

Two forms:

- `chinchilla`: L = E + A / N^alpha + B / D^beta (Hoffmann et al. 2022);
- `overtrained`: L(C, M) = E + (a M^eta + b M^-eta) C^-eta with C = 6 N D and M = D / N tokens
  per parameter (Gadre et al. 2024, eq. 4): Chinchilla's form with the exponents of N and D tied.

Two objectives: `huber`, the Huber loss of log residuals summed over points (the default fit's,
see `isoflop.fit.power`), and `lsq`, plain least squares on the raw loss, which is how Gadre et al.
fit their law. Both are solved by scipy's trust-region least squares (its `huber` loss with
`f_scale = delta` is exactly the Huber objective), which also honours bounds. Coefficients
(E, A, B, a, b) are searched in log space, so they stay positive; exponents as they are.

`isoflop.fit.power.fit_chinchilla` stays the replication-grade fit (its own global search
reproduces Besiroglu et al. to four digits); this module serves the laws and constraints it lacks.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from isoflop.errors import UserError
from isoflop.fit.bootstrap import percentile_interval, resample_counts
from isoflop.fit import checks
from isoflop.fit.checks import positive_column, same_length, to_jsonable
from isoflop.fit.residuals import residual_summary

OBJECTIVES = ("huber", "lsq")
SCREENED_STARTS = 12  # grid starts, lowest objective first, that are optimised to convergence


@dataclass(frozen=True)
class Form:
    """A law's parameters (`names`, of which `exponents` are not log-transformed) and its value."""

    law: str
    form: str
    names: tuple[str, ...]
    exponents: tuple[str, ...]
    evaluate: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]  # (K, P), N (n,), D (n,) -> (K, n)

    def predict(self, params: dict, N: np.ndarray, D: np.ndarray) -> np.ndarray:
        """Loss at (N, D) for `params` ({name: scalar or (K,) array}): (K, n)."""
        stacked = np.column_stack([np.atleast_1d(np.asarray(params[name], dtype=float)) for name in self.names])
        return self.evaluate(stacked, np.asarray(N, dtype=float), np.asarray(D, dtype=float))


def _chinchilla(p, N, D):
    E, A, B, alpha, beta = (p[:, i, None] for i in range(5))
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        return E + A * np.exp(-alpha * np.log(N)) + B * np.exp(-beta * np.log(D))


def _overtrained(p, N, D):
    E, a, b, eta = (p[:, i, None] for i in range(4))
    log_c, log_m = np.log(6.0 * N * D), np.log(D / N)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        return E + (a * np.exp(eta * log_m) + b * np.exp(-eta * log_m)) * np.exp(-eta * log_c)


FORMS = {
    "chinchilla": Form("chinchilla", "L = E + A / N^alpha + B / D^beta",
                       ("E", "A", "B", "alpha", "beta"), ("alpha", "beta"), _chinchilla),
    "overtrained": Form("overtrained", "L(C, M) = E + (a M^eta + b M^-eta) C^-eta; C = 6 N D, M = D / N",
                        ("E", "a", "b", "eta"), ("eta",), _overtrained),
}


@dataclass(frozen=True)
class Constraints:
    """Which parameters are fixed (name -> value), tied (name -> the name it equals) or bounded
    (name -> (low, high)); the rest are free."""

    fixed: dict
    tied: dict
    bounds: dict

    def check(self, form: Form) -> None:
        for kind, names in (("--fix", self.fixed), ("--tie", self.tied), ("--bound", self.bounds)):
            unknown = [name for name in names if name not in form.names]
            if unknown:
                raise UserError(f"{kind}: the {form.law} law has no parameter {unknown[0]!r}; "
                                f"it has {', '.join(form.names)}")
        for name, target in self.tied.items():
            if target not in self.free(form):
                raise UserError(f"--tie {name}={target}: {target!r} must be a free parameter of the {form.law} law")
        for name, (low, high) in self.bounds.items():
            if not low < high:
                raise UserError(f"--bound {name}={low},{high}: the lower bound must be below the upper")
            if name in self.fixed or name in self.tied:
                raise UserError(f"--bound {name}: {name!r} is already fixed or tied")
        for name, value in self.fixed.items():
            if name not in form.exponents and not value > 0:
                raise UserError(f"--fix {name}={value}: the coefficient {name!r} must be positive")

    def free(self, form: Form) -> list[str]:
        return [name for name in form.names if name not in self.fixed and name not in self.tied]


NO_CONSTRAINTS = Constraints({}, {}, {})


class _Space:
    """The free parameters as an unconstrained-ish vector theta: log of each coefficient, exponents raw."""

    def __init__(self, form: Form, constraints: Constraints):
        self.form, self.constraints = form, constraints
        self.free = constraints.free(form)
        self.logged = np.array([name not in form.exponents for name in self.free])

    def params(self, theta: np.ndarray) -> np.ndarray:
        """(K, P) public parameters, in `form.names` order, for theta (K, F)."""
        theta = np.atleast_2d(theta)
        with np.errstate(over="ignore"):
            values = dict(zip(self.free, np.where(self.logged, np.exp(theta), theta).T))
        for name, value in self.constraints.fixed.items():
            values[name] = np.full(len(theta), float(value))
        for name, target in self.constraints.tied.items():
            values[name] = values[target]
        return np.column_stack([values[name] for name in self.form.names])

    def theta(self, params: dict) -> np.ndarray:
        values = np.array([params[name] for name in self.free], dtype=float)
        return np.where(self.logged, np.log(values), values)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        low, high = np.full(len(self.free), -np.inf), np.full(len(self.free), np.inf)
        for i, name in enumerate(self.free):
            if name in self.constraints.bounds:
                lo, hi = self.constraints.bounds[name]
                if self.logged[i]:
                    if hi <= 0:
                        raise UserError(f"--bound {name}: the coefficient {name!r} is positive; "
                                        f"its upper bound must be too")
                    lo, hi = (np.log(lo) if lo > 0 else -np.inf), np.log(hi)
                low[i], high[i] = lo, hi
        return low, high

    def starts(self) -> np.ndarray:
        """A grid of starts (log E about 0.5-3 nats, log coefficients 0-12, exponents 0.1-0.6),
        each moved strictly inside the bounds."""
        axes = []
        for name, logged in zip(self.free, self.logged):
            if name == "E":
                axes.append(np.log([0.5, 1.5, 3.0]))
            elif logged:
                axes.append(np.array([0.0, 4.0, 8.0, 12.0]))
            else:
                axes.append(np.array([0.1, 0.3, 0.6]))
        grid = np.array(list(itertools.product(*axes))) if axes else np.zeros((1, 0))
        low, high = self.bounds()
        inset = np.where(np.isfinite(high - low), 1e-6 * (high - low), 0.0)
        return np.clip(grid, low + inset, high - inset)


def fit_law(
    law: str,
    N,
    D,
    loss,
    *,
    objective: str = "huber",
    huber_delta: float = 1e-3,
    constraints: Constraints = NO_CONSTRAINTS,
    allow_exact: bool = False,
    bootstrap: int = 0,
    seed: int = 0,
    target_C: float | None = None,
) -> dict:
    """Fit the `law` form (see FORMS) to runs (N, D, loss) under `objective` and `constraints`.

    Needs more distinct (N, D) points than free parameters; `allow_exact` accepts as many (an
    interpolation: no residual left to estimate noise from, which the result's warnings say).
    With `bootstrap` > 0, resamples of the points are refitted (warm-started from the fit) for 95%
    percentile intervals around the full-data estimate. Returns a JSON-ready dict in the shape of
    `fit_chinchilla`'s, plus `loss_function`, `constraints` and `residuals` (for `predict_table`).
    """
    from scipy.optimize import least_squares  # scipy is slow to import; only fits need it

    if law not in FORMS:
        raise UserError(f"unknown law {law!r}; expected one of {', '.join(FORMS)}")
    if objective not in OBJECTIVES:
        raise UserError(f"unknown objective {objective!r}; expected one of {', '.join(OBJECTIVES)}")
    if not huber_delta > 0:
        raise UserError(f"huber delta must be positive, got {huber_delta}")
    form = FORMS[law]
    constraints.check(form)
    N, D, loss = positive_column("N", N), positive_column("D", D), positive_column("loss", loss)
    same_length(N=N, D=D, loss=loss)
    space = _Space(form, constraints)
    distinct = checks.distinct_points(N, D)
    checks.enough_points(distinct, len(space.free), f"the {law} law", exact=allow_exact and objective == "lsq")
    warnings: list[str] = []
    if distinct == len(space.free):
        warnings.append(f"{distinct} points for {distinct} free parameters: the law interpolates them, "
                        "so prediction intervals hold only the fit's own uncertainty")
    low, high = space.bounds()
    options = {"method": "trf", "bounds": (low, high), "xtol": 1e-15, "ftol": 1e-15, "gtol": 1e-15,
               "max_nfev": 5000, "x_scale": "jac"}
    if objective == "huber":
        options.update(loss="huber", f_scale=huber_delta)

    def residual_function(n, d, y):
        def residuals(theta):
            predicted = form.evaluate(space.params(theta), n, d)[0]
            with np.errstate(invalid="ignore", divide="ignore"):
                r = np.log(predicted) - np.log(y) if objective == "huber" else predicted - y
            # a step into overflow is a bad step, not a crash
            return np.clip(np.where(np.isfinite(r), r, 1e6), -1e6, 1e6)

        return residuals

    def solve(n, d, y, starts):
        best = None
        for start in starts:
            result = least_squares(residual_function(n, d, y), start, **options)
            if best is None or result.cost < best.cost:
                best = result
        return best

    best = solve(N, D, loss, _screen(space, form, N, D, loss, objective, huber_delta))
    params = space.params(best.x)[0]
    samples, failed = None, 0
    if bootstrap:
        counts = resample_counts(len(loss), bootstrap, seed, min_distinct=len(space.free))
        refits = np.full((bootstrap, len(form.names)), np.nan)
        for i, count in enumerate(counts):
            rows = np.repeat(np.arange(len(loss)), count)
            result = solve(N[rows], D[rows], loss[rows], [best.x])
            if result.success:
                refits[i] = space.params(result.x)[0]
        failed = int((~np.isfinite(refits).all(axis=1)).sum())
        samples = dict(zip(form.names, refits.T))
    fitted = form.evaluate(params[None], N, D)[0]
    result = {
        "law": law,
        "form": form.form,
        "params": dict(zip(form.names, params)),
        "ci95": {name: (percentile_interval(samples[name]) if samples else None) for name in form.names},
        "n_points": len(loss),
        "n_distinct_points": distinct,
        "objective": 2.0 * float(best.cost),  # scipy's cost is half the sum of the loss
        "loss_function": "huber_log" if objective == "huber" else "lsq",
        "huber_delta": huber_delta if objective == "huber" else None,
        "constraints": {"fixed": constraints.fixed, "tied": constraints.tied,
                        "bounds": {name: list(b) for name, b in constraints.bounds.items()}},
        "residuals": residual_summary(loss, fitted, "log" if objective == "huber" else "raw", len(space.free)),
        "bootstrap": {"resamples": bootstrap, "seed": seed, "failed": failed, "samples": samples},
    }
    result["warnings"] = (checks.duplicate_rows(N, D, loss) + warnings + _at_bounds(space, best.x)
                          + checks.fit_warnings(result, form.exponents) + checks.floor_at_zero(result["params"], loss))
    if law == "chinchilla":
        from isoflop.fit.power import allocation_at, compute_optimal_summary

        stacked = None if samples is None else np.column_stack([samples[name] for name in form.names])
        result["compute_optimal"] = compute_optimal_summary(params, stacked)
        if target_C is not None:
            result["at_target"] = allocation_at(params, stacked, target_C)
    return to_jsonable(result)


def _screen(space: _Space, form: Form, N, D, loss, objective, delta) -> np.ndarray:
    """The SCREENED_STARTS grid starts of lowest objective, scored all at once."""
    starts = space.starts()
    predicted = form.evaluate(space.params(starts), N, D)
    with np.errstate(invalid="ignore", divide="ignore"):
        if objective == "huber":
            r = np.abs(np.log(predicted) - np.log(loss))
            score = np.where(r <= delta, 0.5 * r**2, delta * (r - 0.5 * delta)).sum(axis=1)
        else:
            score = ((predicted - loss) ** 2).sum(axis=1)
    score = np.where(np.isfinite(score), score, np.inf)
    return starts[np.argsort(score)[:SCREENED_STARTS]]


def _at_bounds(space: _Space, theta: np.ndarray) -> list[str]:
    """A warning per parameter that ended on one of its bounds (the data want it further)."""
    low, high = space.bounds()
    span = np.where(np.isfinite(high - low), high - low, 1.0)
    at = (np.abs(theta - low) <= 1e-4 * span) | (np.abs(high - theta) <= 1e-4 * span)
    return [f"parameter {name} sits at its bound {space.constraints.bounds[name]}: the data pull it "
            "further, so the fit is only as good as the bound" for name, hit in zip(space.free, at) if hit]
