"""`isoflop tasks fit` and `isoflop tasks predict`: task scaling laws from a model ladder or a study's runs."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from isoflop.errors import UserError

EXAMPLES = """examples:
  isoflop tasks fit --ladder ../shared/reference/olmo-ladder/ladder.json --out task_laws.json
  isoflop tasks fit --runs results/default/runs.parquet --out task_laws.json
  isoflop tasks predict task_laws.json --N 13202396160 --D 5000088518656 --out pred.csv
"""


def register(subparsers) -> None:
    """Add `tasks` with its `fit` and `predict` subcommands."""
    tasks = subparsers.add_parser(
        "tasks", help="task scaling laws: accuracy forecasts from a ladder of small runs",
        description="Fit the OLMo ladder's chained task laws (task bpb from N and D, then accuracy from task "
                    "bpb) and forecast a larger model's task accuracy with 90%% and 95%% intervals.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = tasks.add_subparsers(dest="tasks_command", metavar="ACTION")
    actions.required = True

    fit = actions.add_parser("fit", help="fit every task's chained law", epilog=EXAMPLES,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    source = fit.add_mutually_exclusive_group(required=True)
    source.add_argument("--ladder", type=Path, metavar="LADDER.json",
                        help="a ladder description (allenai/OLMo-ladder's format: per size n, mode, paths of "
                             "per-checkpoint CSVs, relative to the JSON)")
    source.add_argument("--runs", type=Path, metavar="RUNS.parquet",
                        help="a study's runs table, with columns task_<name>_bpb and task_<name>_acc")
    fit.add_argument("--task", action="append", dest="tasks", metavar="NAME",
                     help="fit only this task (repeatable; default: every task the source has)")
    fit.add_argument("--bootstrap", type=int, default=200, metavar="B",
                     help="bootstrap resamples of the runs, for the intervals (default 200; 0 for none)")
    fit.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    fit.add_argument("--backtest", action="store_true",
                     help="also refit on all but the largest size and forecast it by the chained and the direct "
                          "form (LAW.json's `backtest`: errors, how often the intervals hold, the forms ranked); "
                          "about doubles the time")
    fit.add_argument("--out", type=Path, required=True, metavar="LAW.json")
    fit.set_defaults(func=run_fit)

    predict = actions.add_parser("predict", help="forecast task accuracy at N and D", epilog=EXAMPLES,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    predict.add_argument("law", type=Path, metavar="LAW.json")
    predict.add_argument("--N", type=float, required=True, help="model size (the ladder's convention: "
                                                                "non-embedding parameters)")
    predict.add_argument("--D", type=float, required=True, help="training tokens")
    predict.add_argument("--seed", type=int, default=0, help="seed of the residual draws (default 0)")
    predict.add_argument("--out", type=Path, required=True, metavar="PRED.csv",
                         help="columns task, predicted, lo90, hi90, lo95, hi95 (accuracy), then bpb_predicted, "
                              "bpb_lo90, bpb_hi90, bpb_lo95, bpb_hi95 (step 1's task bpb)")
    predict.set_defaults(func=run_predict)


def run_fit(args: argparse.Namespace) -> int:
    from isoflop.task_laws.ladder import read_ladder, read_runs_table
    from isoflop.task_laws.law import backtest_largest_size, fit_task_laws
    from isoflop.workflow import write_json

    if args.bootstrap < 0:
        raise UserError(f"--bootstrap must be >= 0, got {args.bootstrap}")
    ladder = read_ladder(args.ladder, args.tasks) if args.ladder else read_runs_table(args.runs, args.tasks)
    laws = fit_task_laws(ladder, bootstrap=args.bootstrap, seed=args.seed)
    if args.backtest:
        laws["backtest"] = backtest_largest_size(ladder, bootstrap=args.bootstrap, seed=args.seed)
    write_json(args.out, laws)
    print(f"{len(laws['tasks'])} task laws from {laws['n_runs']} runs -> {args.out}")
    if args.backtest:
        done = laws["backtest"]
        for form, scores in (("chained", done), ("direct", done["direct"])):
            print(f"backtest on the largest size, {form} form: mean |error| {scores['mean_abs_error']:.4f}; of "
                  f"{scores['n_predictions']} observations {scores['inside90']} inside the 90% intervals, "
                  f"{scores['inside95']} inside the 95%")
        print(f"forms ranked by backtest: {', '.join(done['ranking'])}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from isoflop.task_laws.law import predict_task_laws
    from isoflop.workflow import atomic_write

    try:
        laws = json.loads(args.law.read_text())
    except FileNotFoundError:
        raise UserError(f"{args.law}: no such file") from None
    except json.JSONDecodeError as err:
        raise UserError(f"{args.law} is not JSON ({err})") from None
    table = predict_task_laws(laws, args.N, args.D, seed=args.seed)
    atomic_write(args.out, lambda handle: handle.write(table.to_csv(index=False).encode()))
    print(table[["task", "predicted", "lo90", "hi90", "lo95", "hi95"]].to_string(index=False, float_format="%.4f"))
    for task in table.loc[~table["bpb_predicted"].apply(math.isfinite), "task"]:
        print(f"{task}: no forecast: its step-1 law (task bpb from N and D) is degenerate; see "
              f"{args.law}'s tasks.{task}.step1.warnings", file=sys.stderr)
    return 0
