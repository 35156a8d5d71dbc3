"""The workflow's fit stage: every law a study supports, fitted from its table of runs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from isoflop.errors import UserError
from isoflop.fit import diagnostics
from isoflop.fit.backtest import backtest
from isoflop.fit.backtest import calibrate_from_backtest
from isoflop.fit.calibrate import calibration_warnings
from isoflop.fit.bootstrap import percentile_interval
from isoflop.fit.checks import to_jsonable
from isoflop.fit.constrained import fit_law
from isoflop.fit.envelope import fit_envelope
from isoflop.fit.frontier import allocation_exponents, envelope_allocation, optimum_at
from isoflop.fit.isoflop import DEFAULT_WINDOW, fit_isoflop
from isoflop.fit.power import fit_chinchilla
from isoflop.fit.predict import predict, predict_intervals
from isoflop.fit.residuals import with_seed_noise
from isoflop.fit.transfer import fit_domains
from isoflop.fit.verdict import MIN_COVERAGE, STUDY_LAWS, score, scored, trusted_approach

NEXT_BUDGET_FACTOR = 10.0
BACKTEST_RESAMPLES = 200  # per fold: enough for 90% and 95% intervals, and folds refit many times
# The extrapolation check fits on budgets at most this far below the held-out largest one: a law is
# planned with at 10x beyond its runs, so a check one budget step (1.8x in the default grid) ahead
# says little about that.
EXTRAPOLATION_FACTOR = 3.0
# The over-training law's refits are one scipy solve each (about 30 ms), not a batched solve: its bootstrap is
# capped here so the study's fit stays seconds (its full fit and 3 backtest folds: 400 refits, not 1,000).
OVERTRAINED_RESAMPLES = 100
INPUTS = {"chinchilla": ("N", "D"), "overtrained": ("N", "D"), "isoflop": ("N", "C")}


def fit_study(
    runs: pd.DataFrame,
    *,
    n_col: str = "N",
    d_col: str = "D",
    c_col: str = "C",
    budget_col: str = "budget",
    loss_col: str = "val_loss",
    bootstrap: int = 1000,
    seed: int = 0,
    huber_delta: float = 1e-3,
    n_jobs: int | None = None,
    isoflop_window: int | None = DEFAULT_WINDOW,
) -> dict:
    """Fit a study's runs; returns the dict the workflow writes as `laws.json`.

    `runs` has one row per run: run_id, N, D, C (achieved FLOPs), budget (planned compute, which
    groups the IsoFLOP profiles), the loss, and optionally status. Rows not "ok" or with a
    non-finite or non-positive value are left out with a warning, never an exception; so is a law
    the remaining runs cannot support. Keys: `chinchilla`, `isoflop`, `overtrained` (each the fit's
    dict or None), `extrapolation` (both laws refitted on the budgets EXTRAPOLATION_FACTOR below the
    largest, scored on its runs), `verdict` (the approach `trusted_approach` trusts, why, its backtest error
    and trust horizon), `next_budget` (10x the largest budget: the trusted approach's N*, D* and loss with 95%
    intervals, the others' beside), `envelope` (approach 1, see `_envelope`; None where it cannot be fitted), `warnings`.
    `backtest` holds each loss law's expanding-window backtest (see `isoflop.fit.backtest`): fitted
    on the k smallest budgets, scored on every larger one, with the coverage of its 90% and 95%
    prediction intervals; `backtest_ranking` the laws by its error. `seed_noise`: the run-to-run
    standard deviation from grid points trained with several seeds (None without), which every
    prediction interval takes as its floor (measured near each budget's optimum, see `study_noise`). `lack_of_fit`: per law, tests of curvature of its
    residuals against log C and how far beyond the largest budget to trust it (see
    `isoflop.fit.diagnostics`). `approaches`: whether the approaches agree on a, and which to trust
    (see `approaches_comparison`). `loss_to_loss`: per domain column `<loss_col>_<domain>`, the shifted
    power law from the mixed validation loss to that domain's (see `isoflop.fit.transfer`). `isoflop_window` is the IsoFLOP parabolas' window (see `fit_isoflop`).
    """
    missing = [col for col in (n_col, d_col, c_col, budget_col, loss_col) if col not in runs.columns]
    if missing:
        raise UserError(f"runs table lacks column(s) {', '.join(missing)}; it has {', '.join(map(str, runs.columns))}")
    warnings: list[str] = []
    # per-domain validation losses (val_loss_code, ...) for the loss-to-loss laws, where every run has them
    domain_cols = [col for col in runs.columns if col.startswith(f"{loss_col}_")
                   and pd.to_numeric(runs[col], errors="coerce").notna().any()]
    table = _usable_runs(runs, [n_col, d_col, c_col, budget_col, loss_col], warnings)
    domain_cols = [col for col in domain_cols if np.all(np.isfinite(pd.to_numeric(runs.loc[table.index, col],
                                                                                   errors="coerce")))]
    for col in domain_cols:
        table[col] = pd.to_numeric(runs.loc[table.index, col])
    columns = {"N": n_col, "D": d_col, "C": c_col, "budget": budget_col, "loss": loss_col}
    data = {key: table[col].to_numpy() for key, col in columns.items()}
    data["run_id"] = table["run_id"].astype(str).to_numpy() if "run_id" in table else table.index.astype(str).to_numpy()
    options = {"bootstrap": bootstrap, "seed": seed, "huber_delta": huber_delta, "n_jobs": n_jobs,
               "window": isoflop_window}
    next_compute = NEXT_BUDGET_FACTOR * float(np.max(data["budget"])) if len(table) else None
    noise = study_noise(data["budget"], data["N"], data["loss"]) if len(table) else None
    options["noise"] = noise
    chinchilla, isoflop = _fit_both(data, options, next_compute, warnings, "")
    envelope = _envelope(data, options, next_compute, warnings)
    overtrained = _overtrained(data, options, warnings)
    fitted = {"chinchilla": chinchilla, "isoflop": isoflop, "overtrained": overtrained}
    backtests = _backtests(data, options)
    for name, law in fitted.items():  # prediction intervals calibrated on the backtest's out-of-sample errors
        if law is not None:
            calibrate_from_backtest(law, data, backtests[name])
            warnings.extend(f"{name}: {message}" for message in calibration_warnings(law))
    laws = {
        **fitted,
        "envelope": envelope,
        "seed_noise": noise,
        "extrapolation": _extrapolation(data, options, isoflop, warnings),
        "backtest": backtests,
        "backtest_ranking": _ranking(backtests),
        "lack_of_fit": {name: _lack_of_fit(law, data, noise) for name, law in fitted.items()},
        "n_runs": len(runs),
        "n_runs_used": len(table),
        "warnings": warnings,
    }
    trusted, reason = trusted_approach(laws)
    laws["verdict"] = None if trusted is None else {
        "approach": trusted, "reason": reason, "backtest_error": score(laws, "backtest", trusted),
        "trust_factor": trust_horizon(laws["lack_of_fit"].get(trusted))}
    laws["next_budget"] = _next_budget(next_compute, laws, trusted, options["seed"])
    laws["approaches"] = approaches_comparison(laws)
    domains = {col[len(loss_col) + 1:]: table.loc[:, col].to_numpy() for col in domain_cols}
    laws["loss_to_loss"] = (fit_domains(data, domains, bootstrap=bootstrap, seed=seed, warnings=warnings)
                            if domains and len(table) else None)
    return to_jsonable(laws)


def finished(runs: pd.DataFrame, loss_col: str = "val_loss") -> pd.DataFrame:
    """The one definition of a finished run: status ok (where the table has a status) and a finite loss.
    Diverged runs have neither."""
    return runs[_status_ok(runs) & np.isfinite(pd.to_numeric(runs[loss_col], errors="coerce"))]


def _status_ok(runs: pd.DataFrame) -> pd.Series:
    if "status" not in runs.columns:
        return pd.Series(True, index=runs.index)
    return runs["status"].astype(str) == "ok"


def _usable_runs(runs: pd.DataFrame, columns: list[str], warnings: list[str]) -> pd.DataFrame:
    """The finished runs (see `finished`) with finite, positive values; the rest named in `warnings`."""
    keep = _status_ok(runs)
    if not keep.all():
        warnings.append(f"left out {int((~keep).sum())} run(s) whose status is not ok: {_ids(runs[~keep])}")
    values = runs[columns].apply(pd.to_numeric, errors="coerce")
    bad = ~(np.isfinite(values) & (values > 0)).all(axis=1) & keep
    if bad.any():
        warnings.append(f"left out {int(bad.sum())} run(s) with a missing, non-finite or non-positive "
                        f"value in {', '.join(columns)}: {_ids(runs[bad])}")
    table = values[keep & ~bad].copy()
    if "run_id" in runs.columns:
        table["run_id"] = runs.loc[table.index, "run_id"]
    return table


def _ids(frame: pd.DataFrame, limit: int = 10) -> str:
    ids = frame["run_id"].astype(str).tolist() if "run_id" in frame else [str(i) for i in frame.index]
    return ", ".join(ids[:limit]) + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def _fit_both(data: dict, options: dict, target: float | None, warnings: list[str], context: str):
    """Chinchilla and IsoFLOP fits of `data`; a law that cannot be fitted is None plus a warning."""
    chinchilla = isoflop = None
    chin_options, iso_options = _law_options(options)
    try:
        chinchilla = with_seed_noise(fit_chinchilla(data["N"], data["D"], data["loss"], target_C=target,
                                                    **chin_options), options["noise"])
        warnings.extend(f"chinchilla{context}: {message}" for message in chinchilla["warnings"])
    except UserError as err:
        warnings.append(f"chinchilla{context}: not fitted: {err}")
    try:
        isoflop = with_seed_noise(fit_isoflop(data["C"], data["N"], data["D"], data["loss"], budget=data["budget"],
                                              target_C=target, **iso_options), options["noise"])
        warnings.extend(f"isoflop{context}: {message}" for message in isoflop["warnings"])
    except UserError as err:
        warnings.append(f"isoflop{context}: not fitted: {err}")
    return chinchilla, isoflop


def _envelope(data: dict, options: dict, target: float | None, warnings: list[str]) -> dict | None:
    """Approach 1 (Hoffmann et al. 2022): the lowest loss reached at each compute, and the size reaching it.

    Each model size's curve is its runs' final losses against their compute, one point per budget it was
    trained at, not the loss along one run: mid-run losses of a decaying schedule sit above those of a run
    that ends there, which is why Hoffmann et al. matched each schedule to its horizon. A budget's runs
    achieve C within a few percent of each other, so each point takes its budget's mean achieved C (in log):
    otherwise a curve ending a hair before the others drops out where they are compared. Sizes are the
    curves, so the bootstrap resamples sizes; `runs` holds the points. D* follows from N* through the runs'
    own FLOPs per token, C / D = c N^p fitted in log space (p = 1, c = 6 under 6ND; attention adds to small
    models' cost).
    """
    # a size trained at one budget (however many seeds) has no curve to compare
    sizes, counts = np.unique(np.unique(np.column_stack([data["N"], data["budget"]]), axis=0)[:, 0],
                              return_counts=True)
    curved = np.isin(data["N"], sizes[counts >= 2])
    budget, log_c = data["budget"][curved], np.log(data["C"][curved])
    shared_c = np.exp(pd.Series(log_c).groupby(budget).transform("mean").to_numpy())
    points = {"N": data["N"][curved], "C": shared_c, "loss": data["loss"][curved]}
    try:
        envelope = fit_envelope(points["N"], points["N"], points["C"], points["loss"],
                                bootstrap=options["bootstrap"], seed=options["seed"])
    except UserError as err:
        warnings.append(f"envelope: not fitted: {err} (counting only sizes trained at 2 or more budgets)")
        return None
    slope, intercept = np.polyfit(np.log(data["N"]), np.log(data["C"] / data["D"]), 1)
    envelope["flops_per_token"] = {"form": "C / D = c N^p", "c": float(np.exp(intercept)), "p": float(slope)}
    envelope["runs"] = points
    envelope["at_target"] = envelope_allocation(envelope, target) if target else None
    return envelope


def _law_options(options: dict) -> tuple[dict, dict]:
    """The study's `options` split into `fit_chinchilla`'s and `fit_isoflop`'s keyword arguments."""
    return ({key: options[key] for key in ("bootstrap", "seed", "huber_delta", "n_jobs")},
            {key: options[key] for key in ("bootstrap", "seed", "window")})


def _extrapolation(data: dict, options: dict, isoflop: dict | None, warnings: list[str]) -> dict | None:
    """Refit on the budgets at least EXTRAPOLATION_FACTOR below the largest and predict the largest's runs,
    each with its 95% confidence and prediction intervals: the test a law has to pass. With fewer than 2
    such budgets, every smaller budget is fitted and a warning gives the factor achieved."""
    budgets = np.unique(data["budget"])
    if len(budgets) < 2:
        warnings.append("extrapolation check skipped: it needs 2 or more budgets")
        return None
    held_out = budgets.max()
    fitted_budgets = budgets[budgets <= held_out / EXTRAPOLATION_FACTOR]
    if len(fitted_budgets) < 2:
        fitted_budgets = budgets[:-1]
        warnings.append(f"extrapolation check: fewer than 2 budgets lie {EXTRAPOLATION_FACTOR:g}x below the largest; "
                        f"it predicts only {held_out / fitted_budgets.max():.2g}x beyond the fitted ones")
    test = data["budget"] == held_out
    train_mask = np.isin(data["budget"], fitted_budgets)
    train = {key: values[train_mask] for key, values in data.items()}
    compute = float(np.exp(np.log(data["C"][test]).mean()))
    chinchilla, isoflop_train = _fit_both(train, options, compute, warnings, " (extrapolation)")
    runs = [{"run_id": run_id, "N": n, "D": d, "C": c, "observed": y}
            for run_id, n, d, c, y in zip(data["run_id"][test], data["N"][test], data["D"][test],
                                           data["C"][test], data["loss"][test])]
    summary = {}
    observed = data["loss"][test]
    for name, law in (("chinchilla", chinchilla), ("isoflop", isoflop_train)):
        if law is None:
            summary[name] = None
            continue
        result = predict_intervals(law, **{key: data[key][test] for key in INPUTS[name]}, seed=options["seed"])
        errors = result["predicted"] / observed - 1.0
        inside = (result["pred_lo"] <= observed) & (observed <= result["pred_hi"])
        for i, row in enumerate(runs):
            row[name] = {"predicted": result["predicted"][i], "conf_lo95": result["conf_lo"][i],
                         "conf_hi95": result["conf_hi"][i], "pred_lo95": result["pred_lo"][i],
                         "pred_hi95": result["pred_hi"][i], "rel_error": errors[i], "inside_pred95": inside[i]}
        summary[name] = {
            "mean_abs_rel_error": float(np.mean(np.abs(errors))),
            "bias": float(np.mean(errors)),
            "coverage95": float(np.mean(inside)),
            "N_opt_predicted": law["at_target"]["N_opt"],
            "N_opt_ci95": law["at_target"]["ci95"]["N_opt"],
        }
    observed_opt = _held_out_optimum(isoflop, held_out)
    return {
        "held_out_budget": held_out,
        "held_out_C": compute,
        "train_budgets": fitted_budgets.tolist(),
        "factor": float(held_out / fitted_budgets.max()),
        "n_train_runs": int(train_mask.sum()),
        "n_held_out_runs": int(test.sum()),
        "N_opt_observed": observed_opt,
        "intervals": INTERVAL_KINDS,
        "laws": summary,
        "runs": runs,
    }


# What each interval in laws.json is: a confidence interval says where the law's mean loss (or optimum) lies,
# a prediction interval where a new run's loss will land (that plus the run's own noise).
INTERVAL_KINDS = {
    "ci95": "95% confidence interval: the bootstrap fits' spread",
    "conf_lo95/conf_hi95": "95% confidence interval of the law's loss there: the bootstrap fits' spread",
    "pred_lo95/pred_hi95": "95% prediction interval of a new run's loss: the bootstrap fits plus resampled "
                           "residuals, never narrower than the measured seed noise",
}


def _overtrained(data: dict, options: dict, warnings: list[str]) -> dict | None:
    """The over-training law of Gadre et al. L(C, M) (Huber on log loss, as the Chinchilla fit), or None."""
    try:
        law = fit_law("overtrained", data["N"], data["D"], data["loss"], huber_delta=options["huber_delta"],
                      bootstrap=min(options["bootstrap"], OVERTRAINED_RESAMPLES), seed=options["seed"])
    except UserError as err:
        warnings.append(f"overtrained: not fitted: {err}")
        return None
    warnings.extend(f"overtrained: {message}" for message in law["warnings"])
    return with_seed_noise(law, options["noise"])


def _backtests(data: dict, options: dict) -> dict:
    """Every loss law's backtest; each fold refits with at most BACKTEST_RESAMPLES bootstrap resamples, and its
    prediction intervals use the seed noise of its own training runs only."""
    fold_options = {**options, "bootstrap": min(options["bootstrap"], BACKTEST_RESAMPLES)}
    chin_options, iso_options = _law_options(fold_options)
    runs = {key: data[key] for key in ("N", "D", "C", "budget", "loss")}

    def noisy(fit):
        return lambda t: with_seed_noise(fit(t), study_noise(t["budget"], t["N"], t["loss"]))

    def overtrained(t):
        law = _overtrained(t, {**fold_options, "noise": None}, [])
        if law is None:
            raise UserError("the overtrained law could not be fitted")
        return law

    fits = {
        "chinchilla": lambda t: fit_chinchilla(t["N"], t["D"], t["loss"], **chin_options),
        "isoflop": lambda t: fit_isoflop(t["C"], t["N"], t["D"], t["loss"], budget=t["budget"], **iso_options),
        "overtrained": overtrained,
    }
    return {name: backtest(runs, noisy(fit), INPUTS[name], seed=options["seed"]) for name, fit in fits.items()}


def _ranking(backtests: dict) -> list[dict]:
    """The law forms ordered by their backtest's mean |relative error| on held-out budgets (not by in-sample fit)."""
    scored = [{"law": name, **{key: result.get(key) for key in ("mean_abs_rel_error", "bias", "coverage90",
                                                               "coverage95", "n_predictions")}}
              for name, result in backtests.items() if result.get("n_predictions")]
    return sorted(scored, key=lambda entry: entry["mean_abs_rel_error"])


def _lack_of_fit(law: dict | None, data: dict, noise: dict | None) -> dict | None:
    """`diagnostics.lack_of_fit` of a law's log residuals on every run it could predict, against ln C."""
    if law is None:
        return None
    name = law["law"]
    predicted, _ = predict(law, **{key: data[key] for key in INPUTS[name]})
    residuals = np.log(data["loss"]) - np.log(predicted)
    return diagnostics.lack_of_fit(np.log(data["C"]), residuals, diagnostics.noise_sd(noise, "log"))


APPROACHES = {"envelope": "approach 1 (envelope)", "isoflop": "approach 2 (IsoFLOP)",
              "chinchilla": "approach 3 (Chinchilla fit)"}


def _exponent_samples(law: dict) -> np.ndarray | None:
    """The bootstrap fits' N* exponent a of an approach's law (nan-free), None without bootstrap."""
    samples = (law.get("bootstrap") or {}).get("samples")
    if not samples:
        return None
    if law["law"] == "chinchilla":
        alpha, beta = (np.asarray(samples[name], dtype=float) for name in ("alpha", "beta"))
        with np.errstate(divide="ignore", invalid="ignore"):
            values = beta / (alpha + beta)
    else:
        values = np.asarray(samples["a"], dtype=float)
    return values[np.isfinite(values)]


def approaches_comparison(laws: dict) -> dict | None:
    """Do the approaches agree on the N* exponent a, and which to trust?

    Each pair's difference in a gets a 95% interval from every pair of their bootstrap fits (independent
    resamples); a pair disagrees when it excludes 0. The approaches' predicted compute-optimal losses at the
    next budget are compared with the run-to-run noise (2 sqrt(2) seed standard deviations: what two single
    runs could differ by). The approach to trust is the loss law with the smaller backtest error whose 95%
    prediction intervals covered at least 80% of its held-out runs; the envelope predicts no loss, so it is
    never the one chosen, only compared.
    """
    fitted = {name: laws[name] for name in APPROACHES if laws.get(name)}
    if len(fitted) < 2:
        return None
    exponents = {name: allocation_exponents(law)["N_opt"] for name, law in fitted.items()}
    pairs = []
    names = list(fitted)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            a, b = _exponent_samples(fitted[first]), _exponent_samples(fitted[second])
            if a is None or b is None or not len(a) or not len(b):
                continue
            low, high = percentile_interval(np.subtract.outer(a, b).ravel())
            pairs.append({"first": first, "second": second,
                          "difference": exponents[first][0] - exponents[second][0],
                          "ci95": [float(low), float(high)], "disagree": bool(low > 0 or high < 0)})
    trust, why = trusted_approach(laws)
    return {
        "a": {name: {"estimate": value, "ci95": ci} for name, (value, ci) in exponents.items()},
        "pairs": pairs,
        "loss_at_next_budget": _loss_gap(laws),
        "trust": trust,
        "trust_reason": _trust_reason(laws, trust, why),
    }


def _loss_gap(laws: dict) -> dict | None:
    """Approaches 2 and 3's compute-optimal loss at the next budget and whether their gap exceeds the seed noise."""
    nxt, noise = laws.get("next_budget"), laws.get("seed_noise")
    if not nxt or not laws.get("isoflop") or not laws.get("chinchilla"):
        return None
    losses = {name: optimum_at(laws[name], nxt["C"])["loss"][0] for name in ("chinchilla", "isoflop")}
    gap = losses["isoflop"] - losses["chinchilla"]
    threshold = None if not noise else float(2 * np.sqrt(2) * noise["sd"])
    return {"C": nxt["C"], "chinchilla": losses["chinchilla"], "isoflop": losses["isoflop"], "gap": gap,
            "noise_threshold": threshold, "exceeds_noise": None if threshold is None else bool(abs(gap) > threshold)}


def _trust_reason(laws: dict, trust: str | None, why: str) -> str:
    """`trusted_approach`'s reason in words, with the trusted law's backtest coverage and curvature where known."""
    if trust is None:
        return why
    score = scored(laws, "backtest", trust)
    if score.get("mean_abs_rel_error") is None:
        return why
    reason = (f"{APPROACHES[trust]} has the smaller backtest error ({score['mean_abs_rel_error']:.2%} mean |relative "
              f"error| on held-out budgets) and its 95% prediction intervals covered {score['coverage95']:.0%} of them")
    if (score.get("coverage95") or 0.0) < MIN_COVERAGE:
        reason += (f", though no law's intervals covered {MIN_COVERAGE:.0%} of the held-out runs: trust its point, "
                   "not its band")
    test = (laws.get("lack_of_fit") or {}).get(trust)
    if test and test.get("curved"):
        reason += "; but its residuals bend against log C, so trust it only near the fitted range"
    return reason


def _held_out_optimum(isoflop: dict | None, budget) -> float | None:
    """The held-out budget's own parabola vertex in the full fit, where it brackets a minimum."""
    for entry in (isoflop or {}).get("budgets", []):
        if entry["budget"] == budget and not entry["minimum_at_edge"]:
            return entry["N_opt"]
    return None


def _next_budget(compute: float | None, laws: dict, trusted: str | None, seed: int) -> dict | None:
    """N*, D* and the loss at 10x the largest budget from the `trusted` approach (its `source`), computed as
    `isoflop predict --C` computes them (`optimum_at`), with the other approaches' allocations beside under their
    own keys. `ci95` holds confidence intervals; `loss_pred95` the prediction interval of a run's loss there."""
    if compute is None or trusted is None:
        return None
    optimum = optimum_at(laws[trusted], compute, seed=seed)
    result = {"C": compute, "source": trusted, **{key: optimum[key][0] for key in ("N_opt", "D_opt", "loss")},
              "ci95": {key: list(optimum[key][1]) for key in ("N_opt", "D_opt", "loss")},
              "loss_pred95": list(optimum["loss_pred"]),
              "intervals": {"ci95": INTERVAL_KINDS["ci95"], "loss_pred95": INTERVAL_KINDS["pred_lo95/pred_hi95"]}}
    for name in (name for name in STUDY_LAWS if name != trusted and laws.get(name)):
        other = optimum_at(laws[name], compute, seed=seed)
        result[name] = {"N_opt": other["N_opt"][0], "D_opt": other["D_opt"][0], "loss": other["loss"][0],
                        "ci95": {key: list(other[key][1]) for key in ("N_opt", "D_opt")}}
    if laws.get("envelope") is not None:
        result["envelope"] = laws["envelope"]["at_target"]
    return result


def recommendation(laws: dict) -> dict | None:
    """laws.json's `next_budget` when it follows `trusted_approach`, else (a laws.json from another rule) the same
    computed again: what the report, MLflow and `isoflop predict`'s default recommend."""
    nxt = laws.get("next_budget")
    trusted, _ = trusted_approach(laws)
    if not nxt or trusted is None or nxt.get("source") == trusted:
        return nxt if trusted is not None else None
    return _next_budget(nxt["C"], laws, trusted, seed=0)



def trust_horizon(test: dict | None) -> float | None:
    """How far beyond the largest budget a law's lack-of-fit test trusts it (a factor; None: untested, or trusted
    up to `diagnostics.HORIZON_LIMIT`), as `diagnostics.verdict` states it: the strongest bend the data allow
    where the residuals look straight, the measured bend where they do not."""
    if not test:
        return None
    return test["trust_factor"] if test["curved"] else test["trust_factor_cautious"]


def near_optimum(budget: np.ndarray, N: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """Which runs sit at each budget's best size (lowest mean loss) or its neighbour on either side: where a
    lab will train, and where the seed noise that floors every interval should be measured. Off-optimum sizes
    are undertrained or starved and vary more from seed to seed."""
    keep = np.zeros(len(loss), dtype=bool)
    for value in np.unique(budget):
        at = budget == value
        sizes = np.unique(N[at])
        means = np.array([loss[at & (N == size)].mean() for size in sizes])
        best = int(np.argmin(means))
        keep |= at & np.isin(N, sizes[max(best - 1, 0):best + 2])
    return keep


def study_noise(budget: np.ndarray, N: np.ndarray, loss: np.ndarray) -> dict | None:
    """`diagnostics.seed_noise` of the replicated grid points near each budget's optimum (see `near_optimum`);
    of every replicated point where none is near one, said in `scope`."""
    mask = near_optimum(budget, N, loss)
    noise = diagnostics.seed_noise(budget[mask], N[mask], loss[mask])
    if noise is not None:
        return {**noise, "scope": "near each budget's optimum (its best size and the sizes beside it)"}
    noise = diagnostics.seed_noise(budget, N, loss)
    return None if noise is None else {**noise, "scope": "every replicated grid point (none near an optimum)"}
