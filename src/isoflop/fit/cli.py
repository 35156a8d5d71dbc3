"""`isoflop fit` and `isoflop predict`: fit a law to runs in a CSV, predict from the saved fit."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from isoflop.errors import UserError
from isoflop.fit.constrained import FORMS, NO_CONSTRAINTS, OBJECTIVES, Constraints
from isoflop.fit.isoflop import DEFAULT_WINDOW
from isoflop.fit.predict import is_study, study_law
from isoflop.fit.verdict import STUDY_LAWS

if TYPE_CHECKING:
    import pandas as pd

# pandas and the fits (scipy, statsmodels) load inside the commands, so `--help` answers at once

LAWS = ("chinchilla", "overtrained", "isoflop", "power")

FIT_EXAMPLES = """examples:
  isoflop fit runs.csv --law chinchilla --out law.json --plot law.png
  isoflop fit runs.csv --law isoflop --budget-col budget --window 3 --out iso.json
  isoflop fit runs.csv --law power --x C --out curve.json
  isoflop fit fit5.csv --law overtrained --objective lsq --loss-col loss_c4_val --out law.json
  isoflop fit runs.csv --law chinchilla --objective lsq --fix E=1.7 --bound alpha=0,1 --tie beta=alpha --out law.json
"""

PREDICT_EXAMPLES = """examples:
  isoflop predict law.json --N 1e9 --D 2e10
  isoflop predict law.json --csv heldout.csv --out pred.csv --loss-col loss_c4_val
  isoflop predict results/default/laws.json --C 1e14                 compute-optimal N, D and loss
  isoflop predict results/default/laws.json --law chinchilla --N 1e5 --D 4e7
"""


def register(subparsers) -> None:
    """Add the `fit` and `predict` subcommands."""
    fit = subparsers.add_parser(
        "fit", help="fit a scaling law to runs in a CSV",
        description="Fit a scaling law to a CSV of runs (one row per run) and write it as JSON.",
        epilog=FIT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    fit.add_argument("input", type=Path, metavar="INPUT.csv")
    fit.add_argument("--law", choices=LAWS, required=True,
                     help="chinchilla: L(N, D) = E + A/N^alpha + B/D^beta; overtrained: L(C, M) = E + "
                          "(a M^eta + b M^-eta) C^-eta with M = D/N (Gadre et al. 2024); isoflop: per-budget "
                          "parabolas then N*, D* power laws in C; power: L = E + A x^-alpha in one variable")
    fit.add_argument("--objective", choices=OBJECTIVES, default="huber",
                     help="chinchilla, overtrained: huber = Huber loss on log residuals (default); "
                          "lsq = least squares on the raw loss")
    fit.add_argument("--fix", action="append", default=[], metavar="NAME=VALUE",
                     help="chinchilla, overtrained: hold a parameter at a value (repeatable), e.g. E=1.7")
    fit.add_argument("--bound", action="append", default=[], metavar="NAME=LOW,HIGH",
                     help="chinchilla, overtrained: keep a parameter within bounds (repeatable), e.g. alpha=0,1")
    fit.add_argument("--tie", action="append", default=[], metavar="NAME=OTHER",
                     help="chinchilla, overtrained: make a parameter equal another (repeatable), e.g. beta=alpha")
    fit.add_argument("--allow-exact", action="store_true",
                     help="with --objective lsq, accept as many distinct points as free parameters "
                          "(the law then interpolates them; prediction intervals lose the noise term)")
    fit.add_argument("--n-col", default="N", help="model size column (default N)")
    fit.add_argument("--d-col", default="D", help="tokens column (default D; derived as C/(6N) if absent)")
    fit.add_argument("--c-col", default="C", help="training FLOPs column (default C)")
    fit.add_argument("--loss-col", default="loss", help="loss column (default loss)")
    fit.add_argument("--budget-col", help="isoflop: column of planned budgets to group runs by "
                                          "(default: group by gaps in C wider than 0.1 dex)")
    fit.add_argument("--window", type=_window, default=DEFAULT_WINDOW, metavar="K",
                     help=f"isoflop: each budget's parabola spans up to K sizes each side of its lowest loss, the "
                          f"same number each side (default {DEFAULT_WINDOW}; 'all' for one parabola over every size)")
    fit.add_argument("--x", choices=("N", "D", "C"), default="C", help="power law: the variable (default C)")
    fit.add_argument("--no-offset", action="store_true", help="power law: fit A x^-alpha, without E")
    fit.add_argument("--bootstrap", type=int, default=1000, metavar="B",
                     help="bootstrap resamples for 95%% intervals (default 1000; 0 for none)")
    fit.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    fit.add_argument("--no-calibrate", action="store_true",
                     help="skip the rolling-origin backtest that calibrates prediction intervals on the law's "
                          "own out-of-sample errors (see docs/forecasts.md)")
    fit.add_argument("--huber-delta", type=float, default=1e-3, metavar="X",
                     help="Huber delta on log residuals (default 1e-3)")
    fit.add_argument("--exclude-top-loss", type=int, default=0, metavar="K",
                     help="drop the K highest-loss rows first (outliers of the smallest runs)")
    fit.add_argument("--out", type=Path, required=True, metavar="OUT.json")
    fit.add_argument("--plot", type=Path, metavar="OUT.png", help="also draw the fit")
    fit.set_defaults(func=run_fit)

    pred = subparsers.add_parser(
        "predict", help="predict loss from a fitted law",
        description="Print the loss a fitted law predicts, with its bootstrap and prediction intervals; with only "
                    "--C, the compute-optimal N, D and loss (Chinchilla and IsoFLOP laws); or, with --csv, write one "
                    "prediction per row with confidence and prediction intervals at --level. LAW.json is a law from "
                    "`isoflop fit` or a study's laws.json (then --law picks one of its laws).",
        epilog=PREDICT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    pred.add_argument("law", type=Path, metavar="LAW.json")
    pred.add_argument("--law", dest="law_name", choices=STUDY_LAWS,
                      help="with a study's laws.json: the law to use (default: the one with the smaller "
                           "mean |relative error| on held-out budgets, from its backtest or extrapolation check)")
    pred.add_argument("--N", type=float, help="model size")
    pred.add_argument("--D", type=float, help="tokens")
    pred.add_argument("--C", type=float, help="training FLOPs (alone: the compute-optimal allocation)")
    pred.add_argument("--csv", type=Path, metavar="IN.csv", help="predict every row of a CSV (needs --out)")
    pred.add_argument("--out", type=Path, metavar="PRED.csv",
                      help="with --csv: the rows with predicted, conf_loXX, conf_hiXX, pred_loXX, pred_hiXX "
                           "(XX: --level in percent), calibrated and, where the CSV has the loss column, "
                           "rel_error and inside_predXX")
    pred.add_argument("--level", type=_level, default=0.95,
                      help="coverage of the intervals, in (0, 1) (default 0.95)")
    for flag, default, what in (("--n-col", "N", "model size"), ("--d-col", "D", "tokens"),
                                ("--c-col", "C", "training FLOPs"), ("--loss-col", "loss", "observed loss")):
        pred.add_argument(flag, default=default, help=f"with --csv: the {what} column (default {default})")
    pred.add_argument("--seed", type=int, default=0, help="seed of the residual draws (default 0)")
    pred.add_argument("--ledger", type=Path, metavar="FOLDER",
                      help="record the forecast(s), with 90%% and 95%% prediction intervals, in FOLDER/forecasts.jsonl "
                           "to be scored when the run lands (`isoflop forecasts`): keyed by --spec-hash, or with "
                           "--csv by its run_id column")
    pred.add_argument("--spec-hash", metavar="RUN_ID", help="with --ledger: the content hash of the planned run")
    pred.set_defaults(func=run_predict)


def run_fit(args: argparse.Namespace) -> int:
    from isoflop.fit import fit_chinchilla, fit_curve, fit_isoflop, fit_law

    table = read_runs(args.input, args)
    if args.exclude_top_loss < 0 or args.exclude_top_loss >= len(table):
        raise UserError(f"--exclude-top-loss {args.exclude_top_loss} must be in [0, {len(table)})")
    table = table.drop(table[args.loss_col].nlargest(args.exclude_top_loss).index).reset_index(drop=True)
    constraints = parse_constraints(args)
    constrained = args.objective != "huber" or constraints != NO_CONSTRAINTS or args.allow_exact
    if args.law not in FORMS and constrained:
        raise UserError(f"--objective, --fix, --bound, --tie and --allow-exact apply to the "
                        f"{' and '.join(FORMS)} laws, not {args.law}")

    def fit_rows(rows: np.ndarray, bootstrap: int) -> dict:
        subset = table[rows]
        options = {"bootstrap": bootstrap, "seed": args.seed}
        if args.law == "overtrained" or (args.law == "chinchilla" and constrained):
            return fit_law(args.law, subset[args.n_col], subset[args.d_col], subset[args.loss_col],
                           objective=args.objective, huber_delta=args.huber_delta, constraints=constraints,
                           allow_exact=args.allow_exact, **options)
        if args.law == "chinchilla":
            return fit_chinchilla(subset[args.n_col], subset[args.d_col], subset[args.loss_col],
                                  huber_delta=args.huber_delta, **options)
        if args.law == "isoflop":
            budget = subset[args.budget_col].to_numpy() if args.budget_col else None
            return fit_isoflop(subset[args.c_col], subset[args.n_col], subset[args.d_col], subset[args.loss_col],
                               budget=budget, window=args.window, **options)
        return fit_curve(subset[_x_column(args)], subset[args.loss_col], variable=args.x,
                         offset=not args.no_offset, huber_delta=args.huber_delta, **options)

    law = fit_rows(np.ones(len(table), dtype=bool), args.bootstrap)
    if not args.no_calibrate:
        from isoflop.fit.backtest import calibrate

        runs = {key: table[col].to_numpy() for key, col in (("N", args.n_col), ("D", args.d_col), ("C", args.c_col),
                                                            ("loss", args.loss_col)) if col in table}
        law = calibrate(law, runs, lambda rows: fit_rows(rows, 0))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(law, indent=1) + "\n")
    print(_summary(law))
    for warning in law.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    if args.plot:
        _plot(args, table, law)
    return 0


def read_runs(path: Path, args: argparse.Namespace) -> pd.DataFrame:
    """The CSV's rows with the columns the law needs; D is derived as C / (6N) when missing."""
    table = _read_csv(path)
    needed = {"chinchilla": [args.n_col, args.d_col], "overtrained": [args.n_col, args.d_col],
              "isoflop": [args.c_col, args.n_col, args.d_col], "power": [_x_column(args)]}[args.law] + [args.loss_col]
    if args.law == "isoflop" and args.budget_col:
        needed.append(args.budget_col)
    if args.d_col in needed and args.d_col not in table and {args.c_col, args.n_col} <= set(table.columns):
        table[args.d_col] = _numeric(table, args.c_col, path) / (6.0 * _numeric(table, args.n_col, path))
    missing = [col for col in needed if col not in table]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)}; it has {', '.join(table.columns)}")
    for col in needed:
        table[col] = _numeric(table, col, path)
    return table


def _read_csv(path: Path) -> pd.DataFrame:
    """The CSV at `path`, or a one-line UserError naming it (missing, unreadable, or no rows)."""
    import pandas as pd

    try:
        table = pd.read_csv(path)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not a readable CSV ({str(err).splitlines()[0]})") from None
    if table.empty:
        raise UserError(f"{path}: no rows, only a header ({', '.join(map(str, table.columns))})")
    return table


def _numeric(table: pd.DataFrame, col: str, path: Path) -> np.ndarray:
    """Column `col` as floats, or UserError naming the first missing or non-numeric data row."""
    import pandas as pd

    numeric = pd.to_numeric(table[col], errors="coerce")
    if numeric.isna().any():
        row = int(np.argmax(numeric.isna().to_numpy()))
        raise UserError(f"{path}: column {col!r} has a missing or non-numeric value at data row {row + 1}")
    return numeric.to_numpy(dtype=float)


def parse_constraints(args: argparse.Namespace) -> Constraints:
    """--fix NAME=VALUE, --tie NAME=OTHER and --bound NAME=LOW,HIGH as `Constraints`."""

    def pairs(flag, items):
        parsed = {}
        for item in items:
            name, sep, value = item.partition("=")
            if not sep or not name or not value:
                raise UserError(f"{flag} {item!r}: expected NAME=VALUE")
            parsed[name.strip()] = value.strip()
        return parsed

    def number(flag, text):
        try:
            return float(text)
        except ValueError:
            raise UserError(f"{flag}: {text!r} is not a number") from None

    fixed = {name: number("--fix", value) for name, value in pairs("--fix", args.fix).items()}
    bounds = {}
    for name, value in pairs("--bound", args.bound).items():
        parts = value.split(",")
        if len(parts) != 2:
            raise UserError(f"--bound {name}={value}: expected NAME=LOW,HIGH")
        bounds[name] = tuple(number("--bound", part) for part in parts)
    return Constraints(fixed, pairs("--tie", args.tie), bounds)


def _window(text: str) -> int | None:
    if text == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--window takes a whole number of sizes or 'all', not {text!r}") from None


def _level(text: str) -> float:
    try:
        level = float(text)
    except ValueError:
        level = float("nan")
    if not 0 < level < 1:
        raise argparse.ArgumentTypeError(f"--level takes a coverage in (0, 1) such as 0.9, not {text!r}")
    return level


def _percent(level: float) -> str:
    """A level as the percent in column names: 0.9 -> "90", 0.975 -> "97.5"."""
    return f"{100 * level:g}"


def _x_column(args: argparse.Namespace) -> str:
    return {"N": args.n_col, "D": args.d_col, "C": args.c_col}[args.x]


def _summary(law: dict) -> str:
    """One line per parameter: estimate and interval."""
    lines = [f"{law['law']}: {law['form']}  ({law['n_points']} points)"]
    for name, value in law["params"].items():
        ci = law["ci95"].get(name)
        interval = f"  95% [{_num(ci[0])}, {_num(ci[1])}]" if ci else ""
        lines.append(f"  {name:>6} = {_num(value)}{interval}")
    return "\n".join(lines)


def _num(value) -> str:
    return "nan" if value is None else f"{value:.5g}"


def _plot(args: argparse.Namespace, table: pd.DataFrame, law: dict) -> None:
    import pandas as pd

    from isoflop.plots import laws as plots  # matplotlib only when a figure is asked for

    if args.law in FORMS:
        runs = pd.DataFrame({"N": table[args.n_col], "D": table[args.d_col], "loss": table[args.loss_col]})
        plots.plot_fitted_vs_observed(runs, law, args.plot)
    elif args.law == "isoflop":
        runs = pd.DataFrame({"N": table[args.n_col], "C": table[args.c_col], "loss": table[args.loss_col]})
        plots.plot_isoflop_curves(runs, law, args.plot)
    else:
        plots.plot_curve(table[_x_column(args)].to_numpy(), table[args.loss_col].to_numpy(), law, args.plot)


def run_predict(args: argparse.Namespace) -> int:
    from isoflop.fit import predict

    law = read_law(args.law)
    if args.ledger is not None and args.csv is None and not args.spec_hash:
        raise UserError("--ledger needs --spec-hash RUN_ID (or --csv with a run_id column): the run it forecasts")
    if is_study(law):
        name, why = study_law(law, args.law_name, args.law)
        print(f"law: {name} ({why})")
        law = law[name]
    elif args.law_name is not None:
        raise UserError(f"{args.law}: --law picks one of a study's laws.json, but this file is one "
                        f"{law.get('law')!r} law")
    if args.csv is not None:
        return _predict_csv(law, args)
    if args.C is not None and args.N is None and args.D is None and law.get("law") in STUDY_LAWS:
        print(_optimum_summary(law, args.C, args.seed))
        return 0
    from isoflop.fit import predict_intervals

    loss, (low, high) = predict(law, args.N, args.D, C=args.C)
    interval = ("no confidence interval (fitted without --bootstrap)" if np.isnan(low)
                else f"95% confidence interval [{low:.5g}, {high:.5g}] (the law's loss there)")
    given = {key: None if value is None else [value] for key, value in (("N", args.N), ("D", args.D), ("C", args.C))}
    noisy = predict_intervals(law, given["N"], given["D"], C=given["C"], level=args.level, seed=args.seed)
    if args.ledger is not None:
        _record(law, args, given, [args.spec_hash])
    kind = ("calibrated on the law's out-of-sample errors" if noisy["calibrated"][0]
            else "too few points to calibrate: widened" if law.get("calibration")
            else "a new run's loss, with its noise; not calibrated out of sample")
    print(f"loss {loss:.5g}  {interval};\n"
          f"{'':{len(f'loss {loss:.5g}')}}  {_percent(args.level)}% prediction interval [{noisy['pred_lo'][0]:.5g}, "
          f"{noisy['pred_hi'][0]:.5g}] ({kind})")
    return 0


def read_law(path: Path) -> dict:
    """A fitted law's JSON (from `isoflop fit`) or a study's laws.json, or a one-line UserError naming `path`."""
    from isoflop.workflow import read_user_json

    law = read_user_json(path)
    if not isinstance(law, dict):
        raise UserError(f"{path}: not a fitted law or a study's laws.json")
    return law


def _optimum_summary(law: dict, compute: float, seed: int) -> str:
    """The compute-optimal N*, D* and loss at `compute`, each with the kind of interval it has."""
    from isoflop.fit.frontier import optimum_at

    if not (np.isfinite(compute) and compute > 0):
        raise UserError(f"--C {compute:g}: the compute must be positive and finite")
    optimum = optimum_at(law, compute, seed=seed)

    def confidence(key):
        low, high = optimum[key][1]
        if np.isnan(low):
            return "no confidence interval (fitted without bootstrap)"
        return f"95% confidence interval [{low:.5g}, {high:.5g}]"

    low, high = optimum["loss_pred"]
    return "\n".join([
        f"compute-optimal allocation at C = {compute:.4g} FLOPs ({law['law']} law):",
        f"  N*   = {optimum['N_opt'][0]:<11.5g} {confidence('N_opt')}",
        f"  D*   = {optimum['D_opt'][0]:<11.5g} {confidence('D_opt')}",
        f"  loss = {optimum['loss'][0]:<11.5g} {confidence('loss')} (the law's loss there);",
        f"  {'':18} 95% prediction interval [{low:.5g}, {high:.5g}] (a new run's loss, with its noise)",
    ])


def _predict_csv(law: dict, args: argparse.Namespace) -> int:
    """One prediction per row of `args.csv`, with confidence and prediction intervals, to `args.out`."""
    from isoflop.fit import predict_intervals

    if args.out is None:
        raise UserError("--csv needs --out PRED.csv for the predictions")
    table = _read_csv(args.csv)
    inputs = {}
    for key, col in (("N", args.n_col), ("D", args.d_col), ("C", args.c_col)):
        if col in table:
            inputs[key] = _numeric(table, col, args.csv)
    result = predict_intervals(law, inputs.get("N"), inputs.get("D"), C=inputs.get("C"), level=args.level,
                               seed=args.seed)
    percent = _percent(args.level)
    out = table.copy()
    for name in ("predicted", "conf_lo", "conf_hi", "pred_lo", "pred_hi"):
        out[name if name == "predicted" else f"{name}{percent}"] = result[name]
    out["calibrated"] = result["calibrated"]
    summary = f"{len(out)} predictions"
    if args.loss_col in table:
        observed = _numeric(table, args.loss_col, args.csv)
        out["rel_error"] = result["predicted"] / observed - 1.0
        out[f"inside_pred{percent}"] = (result["pred_lo"] <= observed) & (observed <= result["pred_hi"])
        summary += (f"; mean |relative error| {np.mean(np.abs(out['rel_error'])):.3%}, "
                    f"{out[f'inside_pred{percent}'].mean():.0%} inside the {percent}% prediction interval")
    if args.ledger is not None:
        if "run_id" not in table:
            raise UserError(f"{args.csv}: --ledger keys each forecast by a run_id column, which it lacks")
        _record(law, args, inputs, table["run_id"].astype(str).tolist())
        summary += f"; recorded in {args.ledger / 'forecasts.jsonl'}"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(args.out, index=False)
    print(f"{summary}; wrote {args.out}")
    return 0


def _record(law: dict, args: argparse.Namespace, inputs: dict, run_ids: list[str]) -> None:
    """One ledger forecast per run id, with the 90% and 95% prediction intervals at `inputs`."""
    from isoflop import ledger
    from isoflop.fit import predict_intervals

    results = {level: predict_intervals(law, inputs.get("N"), inputs.get("D"), C=inputs.get("C"), level=level,
                                        seed=args.seed) for level in ledger.LEVELS}
    for i, run_id in enumerate(run_ids):
        ledger.record_loss(args.ledger, run_id, results[0.9]["predicted"][i],
                           {level: (r["pred_lo"][i], r["pred_hi"][i]) for level, r in results.items()},
                           source=f"isoflop predict {args.law}")
