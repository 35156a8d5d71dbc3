"""The workflow's fit stage: every law a study supports, fitted from its table of runs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from isoflop.errors import UserError
from isoflop.fit.backtest import backtest
from isoflop.fit.checks import to_jsonable
from isoflop.fit.envelope import fit_envelope
from isoflop.fit.frontier import envelope_allocation
from isoflop.fit.isoflop import DEFAULT_WINDOW, fit_isoflop
from isoflop.fit.power import fit_chinchilla
from isoflop.fit.predict import predict

NEXT_BUDGET_FACTOR = 10.0
BACKTEST_RESAMPLES = 200  # per fold: enough for 90% and 95% intervals, and folds refit many times


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
    the remaining runs cannot support. Keys: `chinchilla`, `isoflop` (each the fit's dict or None),
    `extrapolation` (both laws refitted without the largest budget, scored on its runs),
    `next_budget` (10x the largest budget: N*, D* and loss with 95% intervals), `envelope` (approach 1,
    see `_envelope`; None where it cannot be fitted), `warnings`.
    `backtest` holds each law's expanding-window backtest (see `isoflop.fit.backtest`): fitted on
    the k smallest budgets, scored on every larger one, with the coverage of its 90% and 95%
    prediction intervals. `isoflop_window` is the IsoFLOP parabolas' window (see `fit_isoflop`).
    """
    missing = [col for col in (n_col, d_col, c_col, budget_col, loss_col) if col not in runs.columns]
    if missing:
        raise UserError(f"runs table lacks column(s) {', '.join(missing)}; it has {', '.join(map(str, runs.columns))}")
    warnings: list[str] = []
    table = _usable_runs(runs, [n_col, d_col, c_col, budget_col, loss_col], warnings)
    columns = {"N": n_col, "D": d_col, "C": c_col, "budget": budget_col, "loss": loss_col}
    data = {key: table[col].to_numpy() for key, col in columns.items()}
    data["run_id"] = table["run_id"].astype(str).to_numpy() if "run_id" in table else table.index.astype(str).to_numpy()
    options = {"bootstrap": bootstrap, "seed": seed, "huber_delta": huber_delta, "n_jobs": n_jobs,
               "window": isoflop_window}
    next_compute = NEXT_BUDGET_FACTOR * float(np.max(data["budget"])) if len(table) else None
    chinchilla, isoflop = _fit_both(data, options, next_compute, warnings, "")
    envelope = _envelope(data, options, next_compute, warnings)
    return to_jsonable({
        "chinchilla": chinchilla,
        "isoflop": isoflop,
        "envelope": envelope,
        "extrapolation": _extrapolation(data, options, isoflop, warnings),
        "next_budget": _next_budget(next_compute, chinchilla, isoflop, envelope),
        "backtest": _backtests(data, options),
        "n_runs": len(runs),
        "n_runs_used": len(table),
        "warnings": warnings,
    })


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
        chinchilla = fit_chinchilla(data["N"], data["D"], data["loss"], target_C=target, **chin_options)
        warnings.extend(f"chinchilla{context}: {message}" for message in chinchilla["warnings"])
    except UserError as err:
        warnings.append(f"chinchilla{context}: not fitted: {err}")
    try:
        isoflop = fit_isoflop(data["C"], data["N"], data["D"], data["loss"], budget=data["budget"],
                              target_C=target, **iso_options)
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
    sizes, counts = np.unique(data["N"], return_counts=True)
    curved = np.isin(data["N"], sizes[counts >= 2])  # a size trained at one budget has no curve to compare
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
    """Refit without the largest budget and predict its runs: the test a law has to pass."""
    budgets = np.unique(data["budget"])
    if len(budgets) < 2:
        warnings.append("extrapolation check skipped: it needs 2 or more budgets")
        return None
    held_out = budgets.max()
    test = data["budget"] == held_out
    train = {key: values[~test] for key, values in data.items()}
    compute = float(np.exp(np.log(data["C"][test]).mean()))
    chinchilla, isoflop_train = _fit_both(train, options, compute, warnings, " (extrapolation)")
    runs = [{"run_id": run_id, "N": n, "D": d, "C": c, "observed": y}
            for run_id, n, d, c, y in zip(data["run_id"][test], data["N"][test], data["D"][test],
                                           data["C"][test], data["loss"][test])]
    summary = {}
    for name, law, inputs in (
        ("chinchilla", chinchilla, {"N": data["N"][test], "D": data["D"][test]}),
        ("isoflop", isoflop_train, {"N": data["N"][test], "C": data["C"][test]}),
    ):
        if law is None:
            summary[name] = None
            continue
        loss, (low, high) = predict(law, **inputs)
        errors = loss / data["loss"][test] - 1.0
        for row, *values in zip(runs, loss, low, high, errors):
            row[name] = dict(zip(("predicted", "low", "high", "rel_error"), values))
        summary[name] = {
            "mean_abs_rel_error": float(np.mean(np.abs(errors))),
            "N_opt_predicted": law["at_target"]["N_opt"],
            "N_opt_ci95": law["at_target"]["ci95"]["N_opt"],
        }
    observed_opt = _held_out_optimum(isoflop, held_out)
    return {
        "held_out_budget": held_out,
        "held_out_C": compute,
        "n_train_runs": int((~test).sum()),
        "n_held_out_runs": int(test.sum()),
        "N_opt_observed": observed_opt,
        "laws": summary,
        "runs": runs,
    }


def _backtests(data: dict, options: dict) -> dict:
    """Both laws' backtests; each fold refits with at most BACKTEST_RESAMPLES bootstrap resamples."""
    chin_options, iso_options = _law_options({**options, "bootstrap": min(options["bootstrap"], BACKTEST_RESAMPLES)})
    runs = {key: data[key] for key in ("N", "D", "C", "budget", "loss")}
    return {
        "chinchilla": backtest(runs, lambda t: fit_chinchilla(t["N"], t["D"], t["loss"], **chin_options),
                               ("N", "D"), seed=options["seed"]),
        "isoflop": backtest(runs, lambda t: fit_isoflop(t["C"], t["N"], t["D"], t["loss"], budget=t["budget"],
                                                        **iso_options), ("N", "C"), seed=options["seed"]),
    }


def _held_out_optimum(isoflop: dict | None, budget) -> float | None:
    """The held-out budget's own parabola vertex in the full fit, where it brackets a minimum."""
    for entry in (isoflop or {}).get("budgets", []):
        if entry["budget"] == budget and not entry["minimum_at_edge"]:
            return entry["N_opt"]
    return None


def _next_budget(compute: float | None, chinchilla: dict | None, isoflop: dict | None,
                 envelope: dict | None) -> dict | None:
    """N*, D* and the loss at 10x the largest budget: Chinchilla's, with IsoFLOP's and the envelope's N*, D*
    beside."""
    if compute is None or chinchilla is None:
        return None
    target = chinchilla["at_target"]
    result = {"C": compute, "source": "chinchilla", "N_opt": target["N_opt"], "D_opt": target["D_opt"],
              "loss": target["loss"], "ci95": target["ci95"]}
    if isoflop is not None:
        iso = isoflop["at_target"]
        result["isoflop"] = {"N_opt": iso["N_opt"], "D_opt": iso["D_opt"],
                             "ci95": {"N_opt": iso["ci95"]["N_opt"], "D_opt": iso["ci95"]["D_opt"]}}
    if envelope is not None:
        result["envelope"] = envelope["at_target"]
    return result
