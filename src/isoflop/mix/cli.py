"""`isoflop mix fit` and `isoflop mix propose`: predictors and mixtures from anyone's proxy runs.

Input layout (RegMix's and Olmix's CSVs read as they are): a mixtures CSV with a key column and one weight
column per group, and a metrics CSV with the same key column and one column per target (validation losses).
Rows join on the key; every mixture needs its metrics and every metrics row its mixture. Columns of text
(Olmix's run ids and names) and columns without a header (a saved pandas index, as in Olmix's files) are
labels, not weights; `--ignore` names any other column to leave out.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from isoflop.errors import UserError
from isoflop.fit.cli import _numeric, _read_csv
from isoflop.mix.predictors import MODELS

# lightgbm, scipy and pandas load inside the commands, so `isoflop --help` answers at once

EXAMPLES = """examples:
  isoflop mix fit --mixtures train_mixture_1m.csv --metrics train_pile_loss_1m.csv --key index \\
      --target metric/the_pile_pile_cc_val_loss --model lgbm \\
      --test-mixtures test_mixture_1m.csv --test-metrics test_pile_loss_1m.csv --out fit.json
  isoflop mix propose --fit fit.json --out mix.json
  isoflop mix propose --fit fit.json --tokens-per-group tokens.json --total-tokens 2.5e10 --max-epochs 4 \\
      --bounds train_the_pile_pile_cc=0.1,0.6 --kl-max 1.0 --polish --out mix.json
"""

# A weight printed with p decimals is off by up to half a unit in the last place, so g of them can miss 1
# by g/2 * 10^-p (RegMix's files: 17 groups at 3 decimals, sums 0.996 to 1.003). Sums are checked to 1e-6
# or that rounding, whichever is looser, and then renormalised.
SUM_TOLERANCE = 1e-6


def register(subparsers) -> None:
    """Add the `mix` command with its `fit` and `propose` subcommands."""
    mix = subparsers.add_parser(
        "mix", help="fit mixture-to-loss predictors on proxy runs; propose a constrained mixture",
        description="Data mixtures from proxy runs: `fit` a predictor of a target loss from mixture weights "
                    "(LightGBM as in RegMix, the Data Mixing Laws form, or a log-linear ridge baseline), "
                    "scored by cross-validated and held-out Spearman, Pearson and MAE; `propose` the mixture "
                    "it predicts best under repetition, bound and KL constraints.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = mix.add_subparsers(dest="mix_command", metavar="SUBCOMMAND")
    sub.required = True

    fit = sub.add_parser("fit", help="fit a predictor of one target from mixtures and their metrics",
                         epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    fit.add_argument("--mixtures", type=Path, required=True, metavar="M.csv",
                     help="one row per proxy run: the key column and one weight column per group")
    fit.add_argument("--metrics", type=Path, required=True, metavar="L.csv",
                     help="one row per proxy run: the key column and the target columns")
    fit.add_argument("--key", default="index", help="the column joining the two files (default index)")
    fit.add_argument("--target", required=True, metavar="COLUMN", help="the metrics column to predict")
    fit.add_argument("--ignore", action="append", default=[], metavar="COLUMN",
                     help="a mixtures column that is not a weight (repeatable; columns of text and columns "
                          "without a header are left out already)")
    fit.add_argument("--model", required=True, metavar="MODEL",
                     help=f"one of {', '.join(MODELS)}: lgbm = LightGBM with RegMix's settings; mixing-law = "
                          "L = c + k exp(sum_j t_j r_j) (Ye et al. 2024), Huber fit; ridge = log L linear in r")
    fit.add_argument("--test-mixtures", type=Path, metavar="M2.csv", help="held-out mixtures to score on")
    fit.add_argument("--test-metrics", type=Path, metavar="L2.csv", help="their metrics")
    fit.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
    fit.add_argument("--seed", type=int, default=0, help="seed of the fit and the folds (default 0)")
    fit.add_argument("--out", type=Path, required=True, metavar="OUT.json")
    fit.set_defaults(func=run_fit)

    prop = sub.add_parser("propose", help="the mixture a fitted predictor ranks best, under constraints",
                          epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    prop.add_argument("--fit", type=Path, required=True, metavar="OUT.json", help="a file from `isoflop mix fit`")
    prop.add_argument("--natural", action="append", default=[], metavar="GROUP=W|FILE",
                      help="the natural mixture candidates are sampled around (repeatable GROUP=W, or one JSON "
                           "object / two-column CSV file); default: --tokens-per-group normalised, else the "
                           "mean of the fitted mixtures")
    prop.add_argument("--tokens-per-group", action="append", default=[], metavar="GROUP=TOKENS|FILE",
                      help="tokens available per group (repeatable GROUP=TOKENS, or a JSON / CSV file)")
    prop.add_argument("--total-tokens", type=float, metavar="D", help="tokens the target run trains on")
    prop.add_argument("--max-epochs", type=float, metavar="E",
                      help="at most E passes over any group: weight * D / tokens <= E (needs the two above)")
    prop.add_argument("--bounds", action="append", default=[], metavar="GROUP=LO,HI",
                      help="keep a group's weight within [LO, HI] (repeatable)")
    prop.add_argument("--kl-max", type=float, metavar="NATS", help="KL(mixture || natural) at most NATS")
    prop.add_argument("--n-candidates", type=int, default=100_000, help="mixtures sampled (default 100000)")
    prop.add_argument("--top-k", type=int, default=100, help="best feasible candidates averaged (default 100)")
    prop.add_argument("--sparsity", type=float, default=0.0,
                      help="chance each group is dropped from a candidate (default 0)")
    prop.add_argument("--polish", action="store_true", help="also refine the average with SLSQP")
    prop.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    prop.add_argument("--out", type=Path, required=True, metavar="MIX.json")
    prop.set_defaults(func=run_propose)


def run_fit(args: argparse.Namespace) -> int:
    from isoflop.mix.predictors import cross_validate, fit_predictor, score

    if (args.test_mixtures is None) != (args.test_metrics is None):
        raise UserError("--test-mixtures and --test-metrics go together")
    if args.model not in MODELS:
        raise UserError(f"--model {args.model!r}: expected one of {', '.join(MODELS)}")
    groups, weights, targets = read_proxies(args.mixtures, args.metrics, args.key, args.target, args.ignore)
    predictor = fit_predictor(args.model, weights, targets, seed=args.seed)
    result = {"model": args.model, "target": args.target, "key": args.key, "groups": groups, "seed": args.seed,
              "n_train": len(targets), "train_mean": [float(v) for v in weights.mean(axis=0)],
              "cv": cross_validate(args.model, weights, targets, folds=args.folds, seed=args.seed)}
    if args.test_mixtures is not None:
        test_groups, test_weights, test_targets = read_proxies(args.test_mixtures, args.test_metrics, args.key,
                                                               args.target, args.ignore)
        if set(test_groups) != set(groups):
            raise UserError(f"{args.test_mixtures}: groups {', '.join(sorted(set(test_groups) ^ set(groups)))} "
                            f"are in only one of it and {args.mixtures}")
        test_weights = test_weights[:, [test_groups.index(group) for group in groups]]
        result["test"] = {**score(test_targets, predictor.predict(test_weights)), "n": len(test_targets)}
    result["predictor"] = predictor.to_json()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(_json_safe(result), indent=1) + "\n")
    print(f"{args.model} on {len(targets)} mixtures, {len(groups)} groups, target {args.target}: "
          f"{_scores('cv', result['cv'])}"
          + (f"; {_scores('test', result['test'])}" if "test" in result else ""))
    return 0


def run_propose(args: argparse.Namespace) -> int:
    from isoflop.mix.predictors import from_json
    from isoflop.mix.propose import propose

    try:
        fitted = json.loads(args.fit.read_text())
        groups, predictor_json = list(fitted["groups"]), fitted["predictor"]
    except FileNotFoundError:
        raise UserError(f"{args.fit}: no such file") from None
    except (json.JSONDecodeError, KeyError, TypeError):
        raise UserError(f"{args.fit}: not a fit from `isoflop mix fit` (needs groups and predictor)") from None
    predictor = from_json(predictor_json)
    tokens = _per_group(args.tokens_per_group, groups, "--tokens-per-group") if args.tokens_per_group else None
    if args.natural:
        natural = _per_group(args.natural, groups, "--natural")
    elif tokens is not None:
        natural = tokens
    else:
        natural = np.asarray(fitted["train_mean"], dtype=float)
    if natural.sum() <= 0 or (natural < 0).any():
        raise UserError("the natural mixture needs non-negative weights with a positive sum")
    natural = natural / natural.sum()
    result = propose(predictor, natural, n_candidates=args.n_candidates, top_k=args.top_k, seed=args.seed,
                     max_epochs=args.max_epochs, tokens_per_group=tokens, total_tokens=args.total_tokens,
                     bounds=_bounds(args.bounds, groups), kl_max=args.kl_max, groups=groups,
                     polish=args.polish, sparsity=args.sparsity)
    result = {"model": predictor.model, "target": fitted.get("target"), "natural": [float(v) for v in natural],
              **result}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(_json_safe(result), indent=1) + "\n")
    top = sorted(zip(result["weights"], groups), reverse=True)[:5]
    print(f"predicted {result['predicted']:.4f} ({result['n_feasible']} of {result['n_candidates']} candidates "
          f"feasible; binding: {', '.join(result['binding']) or 'none'}); largest weights: "
          + ", ".join(f"{group} {weight:.3f}" for weight, group in top))
    return 0


def read_proxies(mixtures_path: Path, metrics_path: Path, key: str, target: str, ignore: list[str] = ()):
    """(groups, weights (n, g), targets (n,)) from a mixtures CSV and a metrics CSV joined on `key`."""
    import pandas as pd

    mixtures, metrics = _read_csv(mixtures_path), _read_csv(metrics_path)
    for column in ignore:
        if column not in mixtures:
            raise UserError(f"--ignore {column!r}: {mixtures_path} has no such column")
    for path, table in ((mixtures_path, mixtures), (metrics_path, metrics)):
        if key not in table:
            raise UserError(f"{path}: no key column {key!r}; it has {', '.join(map(str, table.columns))}")
        keys = table[key].astype(str)
        if keys.duplicated().any():
            raise UserError(f"{path}: key {key}={keys[keys.duplicated()].iloc[0]} appears more than once")
    if target not in metrics:
        raise UserError(f"{metrics_path}: no target column {target!r}; it has "
                        f"{', '.join(str(col) for col in metrics.columns if col != key)}")
    def is_label(column) -> bool:  # pandas names a column without a header "Unnamed: <i>"
        values = mixtures[column]
        text_only = (not pd.api.types.is_numeric_dtype(values)
                     and pd.to_numeric(values, errors="coerce").isna().all())
        return str(column).startswith("Unnamed: ") or text_only or column in ignore

    groups = [str(col) for col in mixtures.columns if col != key and not is_label(col)]
    if not groups:
        raise UserError(f"{mixtures_path}: no weight columns besides the key {key!r}")
    mixture_keys, metric_keys = mixtures[key].astype(str), metrics[key].astype(str)
    for path, own, other_path, other in ((mixtures_path, mixture_keys, metrics_path, metric_keys),
                                         (metrics_path, metric_keys, mixtures_path, mixture_keys)):
        unmatched = own[~own.isin(set(other))]
        if len(unmatched):
            raise UserError(f"{path}: {len(unmatched)} row(s) do not join {other_path} on {key} "
                            f"(first: {key}={unmatched.iloc[0]})")
    weights = np.column_stack([_numeric(mixtures, group, mixtures_path) for group in groups])
    for row, column in zip(*np.nonzero(weights < 0)):
        raise UserError(f"{mixtures_path}: {key}={mixture_keys.iloc[row]}: group {groups[column]!r} has a "
                        f"negative weight {weights[row, column]:g}")
    tolerance = max(SUM_TOLERANCE, len(groups) / 2 * 10.0 ** -_decimals(weights))
    sums = weights.sum(axis=1)
    for row in np.flatnonzero(np.abs(sums - 1.0) > tolerance):
        raise UserError(f"{mixtures_path}: {key}={mixture_keys.iloc[row]}: weights sum to {sums[row]:.6g}, not 1 "
                        f"(within {tolerance:g})")
    order = metric_keys.reset_index(drop=True).map({k: i for i, k in enumerate(mixture_keys)}).to_numpy()
    targets = _numeric(metrics, target, metrics_path)
    return groups, weights[order] / sums[order, None], targets


def _decimals(values: np.ndarray) -> int:
    """The fewest decimals that write every value exactly (as a CSV printed with fixed precision does)."""
    for decimals in range(16):
        scaled = values * 10.0 ** decimals
        if np.allclose(scaled, np.round(scaled), rtol=0, atol=1e-6):
            return decimals
    return 16


def _per_group(items: list[str], groups: list[str], flag: str) -> np.ndarray:
    """One value per group from repeatable GROUP=VALUE items or one JSON object / two-column CSV file."""
    if len(items) == 1 and "=" not in items[0]:
        values = _read_group_file(Path(items[0]), flag)
    else:
        values = {}
        for item in items:
            name, _, value = item.partition("=")
            try:
                values[name.strip()] = float(value)
            except ValueError:
                raise UserError(f"{flag} {item!r}: expected GROUP=NUMBER") from None
    unknown = sorted(set(values) - set(groups))
    if unknown:
        raise UserError(f"{flag}: unknown group(s) {', '.join(unknown)}; the fit's groups are {', '.join(groups)}")
    missing = [group for group in groups if group not in values]
    if missing:
        raise UserError(f"{flag}: no value for group(s) {', '.join(missing)}")
    array = np.array([values[group] for group in groups], dtype=float)
    if not np.isfinite(array).all() or (array < 0).any():
        raise UserError(f"{flag}: values must be finite and non-negative")
    return array


def _read_group_file(path: Path, flag: str) -> dict[str, float]:
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text())
            return {str(name): float(value) for name, value in data.items()}
        except FileNotFoundError:
            raise UserError(f"{flag} {path}: no such file") from None
        except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
            raise UserError(f"{flag} {path}: expected a JSON object of group: number") from None
    table = _read_csv(path)
    if table.shape[1] != 2:
        raise UserError(f"{flag} {path}: expected two columns (group, value), found {table.shape[1]}")
    return dict(zip(table.iloc[:, 0].astype(str), _numeric(table, table.columns[1], path)))


def _bounds(items: list[str], groups: list[str]) -> list[tuple[float, float]] | None:
    if not items:
        return None
    bounds = {group: (0.0, 1.0) for group in groups}
    for item in items:
        name, sep, value = item.partition("=")
        low, comma, high = value.partition(",")
        try:
            pair = (float(low), float(high))
        except ValueError:
            pair = None
        if not sep or not comma or pair is None:
            raise UserError(f"--bounds {item!r}: expected GROUP=LO,HI")
        if name not in bounds:
            raise UserError(f"--bounds: unknown group {name!r}; the fit's groups are {', '.join(groups)}")
        bounds[name] = pair
    return [bounds[group] for group in groups]


def _scores(label: str, scores: dict) -> str:
    return f"{label} spearman {scores['spearman']:.4f}, pearson {scores['pearson']:.4f}, mae {scores['mae']:.4f}"


def _json_safe(value):
    """NaN (an undefined correlation) as null, so the file is strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value

