"""`isoflop compare`: two studies' compute-optimal frontiers, and the loss gap between them at a target budget.

Each study is summarised by one of its laws (`--law`, else the one that predicted its held-out budgets best,
as `isoflop predict` chooses): the loss it reaches at the compute-optimal allocation, against compute. The
gap at the target budget is study B's loss minus study A's, so a negative gap means B is better. Its
interval treats the two laws' bootstrap fits as independent (the studies share no runs): the gap's
distribution is every difference of a bootstrap loss of B and one of A, and its 95% interval that
distribution's percentile interval.

The decision labs take is rarely "B's loss is 0.02 lower" but "B is worth k times A's compute": the
effective compute multiplier k = C_A(L) / C_B(L), the compute A's frontier needs to reach the loss L that B
reaches at the target budget, over that budget (k > 1: B is better). Its interval pairs the two laws'
bootstrap fits (independent studies) and inverts each of A's on a fine grid of compute; P(B beats A) is
the share of pairs in which B's loss at the target is the lower; the crossover budgets are where the two
point frontiers cross on the drawn grid.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from isoflop import ledger
from isoflop.errors import UserError
from isoflop.fit.bootstrap import percentile_interval
from isoflop.fit.cli import read_law
from isoflop.fit.frontier import compute_grid, optimal_loss
from isoflop.fit.predict import is_study, study_law
from isoflop.fit.verdict import STUDY_LAWS

# numpy and the law evaluations are light (the CLI loads them anyway); matplotlib loads only to draw

COMPARE_EXAMPLES = """examples:
  isoflop compare results/default results/lr_sweep --out compare.png
  isoflop compare results/a/laws.json results/b/laws.json --budget 1e15 --law chinchilla
"""


def register(subparsers) -> None:
    """Add `isoflop compare` to the CLI."""
    parser = subparsers.add_parser(
        "compare", help="two studies' compute-optimal frontiers and their loss gap at a budget",
        description="Overlay two studies' compute-optimal frontiers (the loss at the compute-optimal "
                    "allocation against C, with 95% bands) and state study B's loss minus study A's at the "
                    "target budget, with a 95% interval from the two laws' bootstrap fits (assumed "
                    "independent) and whether it excludes 0; and the effective compute multiplier of B over A "
                    "there (the compute A needs for B's loss, over the budget), with its interval, P(B beats A) "
                    "and any budgets where the frontiers cross.",
        epilog=COMPARE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study_a", type=Path, metavar="STUDY_A", help="a study folder (results/<study>/) or its laws.json")
    parser.add_argument("study_b", type=Path, metavar="STUDY_B", help="the same for the other study")
    parser.add_argument("--budget", type=float, metavar="C",
                        help="target compute in FLOPs (default: 10x the larger study's largest budget)")
    parser.add_argument("--law", choices=STUDY_LAWS,
                        help="the law both studies use (default: each study's own, the one with the smaller "
                             "mean |relative error| on held-out budgets)")
    parser.add_argument("--level", type=float, default=0.9,
                        help="coverage of the compute multiplier's interval (default 0.9)")
    parser.add_argument("--out", type=Path, metavar="OUT.png", help="also draw both frontiers")
    parser.add_argument("--shared-e", action="store_true",
                        help="also fit both studies' Chinchilla laws with one irreducible loss E (from each "
                             "study's runs.parquet) and say whether it fits comparably, and k under it")
    parser.add_argument("--ledger", type=Path, metavar="FOLDER",
                        help="record the call 'B beats A at the budget', with its probability and the multiplier, "
                             "in FOLDER/forecasts.jsonl (needs --runs), scored once both runs land")
    parser.add_argument("--runs", nargs=2, metavar=("RUN_A", "RUN_B"),
                        help="with --ledger: the run ids (content hashes) of A's and B's runs at the budget that "
                             "will settle the call")
    parser.set_defaults(func=run_compare)


def run_compare(args: argparse.Namespace) -> int:
    if args.ledger is not None and not args.runs:
        raise UserError("--ledger needs --runs RUN_A RUN_B: the two runs at the budget that will settle the call")
    studies = [read_study(path, args.law) for path in (args.study_a, args.study_b)]
    span = [fit for study in studies for fit in study["fits"]]
    result = compare_frontiers(studies[0]["law"], studies[1]["law"], args.budget, span=span)
    for label, study in zip("AB", studies):
        print(f"{label}: {study['source']}, {study['law']['law']} law ({study['why']})")
    print(describe(result))
    if not 0 < args.level < 1:
        raise UserError(f"--level {args.level:g}: the coverage must be in (0, 1), such as 0.9")
    multiplier = compute_multiplier(studies[0]["law"], studies[1]["law"], result["C"], args.level)
    print(describe_multiplier(multiplier))
    if args.shared_e:
        runs = [study_runs(study["source"]) for study in studies]
        if any(table is None for table in runs):
            raise UserError("--shared-e fits both studies' runs: it needs each study's runs.parquet beside its "
                            "laws.json")
        delta = studies[0]["law"].get("huber_delta") or 1e-3
        print(describe_shared_e(shared_e_fit(runs, huber_delta=delta), result["C"]))
    if args.ledger is not None:
        run_a, run_b = args.runs
        record_call(args.ledger, multiplier, run_a, run_b, source=f"isoflop compare {args.study_a} {args.study_b}")
        print(f"recorded in {args.ledger / ledger.LEDGER}")
    if args.out:
        plot_comparison(result, [f"{label}: {study['source']}" for label, study in zip("AB", studies)], args.out)
        print(f"wrote {args.out}")
    return 0


def read_study(path: Path, law_name: str | None) -> dict:
    """A study's chosen law: {"source": the laws.json read, "law": the fitted law, "why": how it was chosen,
    "fits": every law it fitted (their budgets span the study)}."""
    source = path / "laws.json" if path.is_dir() else path
    laws = read_law(source)
    if not is_study(laws):
        raise UserError(f"{source}: not a study's laws.json (no 'chinchilla' or 'isoflop' key)")
    name, why = study_law(laws, law_name, source)
    return {"source": source, "law": laws[name], "why": why,
            "fits": [laws[key] for key in STUDY_LAWS if laws.get(key)]}


def compare_frontiers(law_a: dict, law_b: dict, budget: float | None = None, span: list[dict] = ()) -> dict:
    """Both laws' frontiers and the gap (B minus A) in compute-optimal loss at `budget`, with 95% intervals.

    `budget` defaults to the larger of the two laws' targets (`at_target`: 10x each study's largest
    budget). Returns C (the budget), loss_a and loss_b (point, (low, high)), gap (point, (low, high)),
    excludes_zero, and curves: {"compute": (m,), "a": (point, band), "b": (point, band)} to draw, over the
    budgets of both laws and of the fits in `span` (a Chinchilla law does not record its budgets; the
    same study's IsoFLOP fit does) up to the target.
    """
    if budget is None:
        targets = [law["at_target"]["C"] for law in (law_a, law_b) if law.get("at_target")]
        if not targets:
            raise UserError("neither law has a target budget (at_target); pass --budget C")
        budget = max(targets)
    if not (np.isfinite(budget) and budget > 0):
        raise UserError(f"--budget {budget:g}: the compute must be positive and finite")
    (point_a, spread_a), (point_b, spread_b) = (optimal_loss(law, [budget]) for law in (law_a, law_b))
    if spread_a is None or spread_b is None:
        raise UserError("the gap's interval needs both laws' bootstrap fits; a law was fitted without bootstrap")
    # every pair of bootstrap fits: the exact distribution of the difference of two independent resamples
    gaps = np.subtract.outer(spread_b[:, 0], spread_a[:, 0]).ravel()
    low, high = percentile_interval(gaps)
    # the grid spans both studies' budgets and reaches the target, which counts as one more known compute
    compute = compute_grid([law_a, law_b, *span, {"at_target": {"C": budget}}])
    curves = {"compute": compute}
    for key, law in (("a", law_a), ("b", law_b)):
        point, spread = optimal_loss(law, compute)
        curves[key] = (point, percentile_interval(spread))
    return {
        "C": float(budget),
        "loss_a": (float(point_a[0]), tuple(percentile_interval(spread_a[:, 0]).tolist())),
        "loss_b": (float(point_b[0]), tuple(percentile_interval(spread_b[:, 0]).tolist())),
        "gap": (float(point_b[0] - point_a[0]), (float(low), float(high))),
        "excludes_zero": bool(low > 0 or high < 0),
        "curves": curves,
    }


MULTIPLIER_GRID_DEX = 6.0  # how far either side of the budget the bootstrap frontiers are inverted
MULTIPLIER_GRID_POINTS = 2401  # 0.005 dex apart


def compute_multiplier(law_a: dict, law_b: dict, budget: float, level: float = 0.9) -> dict:
    """The effective compute multiplier of B over A at `budget`: k = C_A(L_B(budget)) / budget, the factor
    more compute A needs to reach the loss B reaches there (k > 1: B is better). Returns k (exact inversion
    of A's point frontier; inf where A never reaches that loss), its `level` interval over paired bootstrap
    fits (clipped to 10^+-MULTIPLIER_GRID_DEX), p_b_beats_a (the share of all pairs of bootstrap fits in
    which B's loss at the budget is the lower) and crossovers (budgets where the point frontiers cross)."""
    from scipy.optimize import brentq

    target = float(optimal_loss(law_b, [budget])[0][0])

    def gap(log_c):
        return float(optimal_loss(law_a, [np.exp(log_c)])[0][0]) - target

    log_c, reach = np.log(budget), MULTIPLIER_GRID_DEX * np.log(10) * 4
    if gap(log_c + reach) > 0 or gap(log_c - reach) < 0:  # A's frontier never gets there (its floor E is higher)
        k = np.inf if gap(log_c + reach) > 0 else 0.0
    else:
        k = float(np.exp(brentq(gap, log_c - reach, log_c + reach, xtol=1e-13, rtol=1e-14) - log_c))
    _, spread_a = optimal_loss(law_a, [budget])
    _, spread_b = optimal_loss(law_b, [budget])
    interval = (np.nan, np.nan)
    p_beats = np.nan
    if spread_a is not None and spread_b is not None:
        p_beats = float(np.mean(np.subtract.outer(spread_b[:, 0], spread_a[:, 0]) < 0))
        grid = budget * np.logspace(-MULTIPLIER_GRID_DEX, MULTIPLIER_GRID_DEX, MULTIPLIER_GRID_POINTS)
        _, frontiers = optimal_loss(law_a, grid)
        pairs = min(len(frontiers), len(spread_b))
        log_k = np.full(pairs, np.nan)
        for i in range(pairs):
            curve = frontiers[i]
            if np.isfinite(curve).all() and np.isfinite(spread_b[i, 0]) and (np.diff(curve) < 0).all():
                # a decreasing frontier: interpolate log10 C at B's loss (beyond the grid: its end)
                log_k[i] = np.interp(-spread_b[i, 0], -curve, np.log10(grid / budget))
        interval = tuple(10 ** percentile_interval(log_k[np.isfinite(log_k)], level))
    compute = compute_grid([law_a, law_b, {"at_target": {"C": budget}}])
    difference = optimal_loss(law_b, compute)[0] - optimal_loss(law_a, compute)[0]
    flips = np.flatnonzero(np.sign(difference[:-1]) * np.sign(difference[1:]) < 0)
    log_grid = np.log(compute)
    share = difference[flips] / (difference[flips] - difference[flips + 1])  # where the line between crosses 0
    crossovers = np.exp(log_grid[flips] + share * (log_grid[flips + 1] - log_grid[flips])).tolist()
    return {"C": float(budget), "loss_b": target, "k": k, "interval": tuple(map(float, interval)),
            "level": level, "p_b_beats_a": p_beats, "crossovers": crossovers}


def record_call(folder: Path, multiplier: dict, run_a: str, run_b: str, source: str = "") -> dict:
    """Record `compute_multiplier`'s call in the ledger in `folder`: run B beats run A (the two runs at the
    budget) with probability P(B beats A), the multiplier k and its interval beside it."""
    if not np.isfinite(multiplier["p_b_beats_a"]):
        raise UserError("no probability to record: the call needs both laws' bootstrap fits")
    low, high = multiplier["interval"]
    return ledger.record_beats(folder, run_b, run_a, multiplier["p_b_beats_a"], source=source, C=multiplier["C"],
                               k=multiplier["k"], k_interval=[low, high], level=multiplier["level"])


SHARED_E_CRITICAL = 3.841  # chi-square with 1 dof at 95%: the one parameter a shared E saves


def shared_e_fit(runs: list[tuple], huber_delta: float = 1e-3) -> dict:
    """Both studies' Chinchilla laws fitted with one irreducible loss E (OLMo-core's ladder fits recipes this
    way: the data decide the floor, the recipes differ in how fast they approach it). `runs`: (N, D, loss) of
    each study's finished runs. E is profiled (each study's law refitted with E fixed, the summed objective
    minimised over E below the smallest loss); the shared E fits comparably where the likelihood ratio
    against separate fits, 2 n ln(O_shared / O_separate) (the Huber objective on log loss is L1-like in its
    linear range: a Laplace likelihood), stays below SHARED_E_CRITICAL. Returns E, the two laws (`laws`),
    each separate fit's E, both objectives, the statistic and `comparable`."""
    from scipy.optimize import minimize_scalar

    from isoflop.fit.constrained import Constraints, fit_law

    def fits(fixed: dict) -> list[dict]:
        return [fit_law("chinchilla", n, d, loss, huber_delta=huber_delta, constraints=Constraints(fixed, {}, {}))
                for n, d, loss in runs]

    separate = fits({})
    ceiling = min(float(np.min(loss)) for _, _, loss in runs)
    best = minimize_scalar(lambda e: sum(law["objective"] for law in fits({"E": float(e)})),
                           bounds=(1e-4 * ceiling, ceiling * (1 - 1e-4)), method="bounded",
                           options={"xatol": 1e-6 * ceiling})
    shared = fits({"E": float(best.x)})
    points = sum(len(loss) for _, _, loss in runs)
    joint, apart = (sum(law["objective"] for law in group) for group in (shared, separate))
    statistic = float(2 * points * np.log(joint / apart)) if apart > 0 else float("inf")
    return {"E": float(best.x), "laws": shared, "separate_E": [law["params"]["E"] for law in separate],
            "objective": joint, "separate_objective": apart, "statistic": statistic,
            "comparable": bool(statistic <= SHARED_E_CRITICAL)}


def study_runs(laws_path: Path) -> tuple | None:
    """(N, D, loss) of the finished runs in the runs table beside a study's laws.json; None without one."""
    import pandas as pd

    from isoflop.fit.study import finished

    table_path = Path(laws_path).with_name("runs.parquet")
    if not table_path.exists():
        return None
    ok = finished(pd.read_parquet(table_path))
    return ok["N"].to_numpy(float), ok["D"].to_numpy(float), ok["val_loss"].to_numpy(float)


def describe_shared_e(joint: dict, budget: float) -> str:
    """The shared-E fit in a line or two: E against the separate fits', whether it fits comparably, and
    where it does, the multiplier under it."""
    line = (f"shared-E joint fit: E = {joint['E']:.4g} (separate fits: A {joint['separate_E'][0]:.4g}, "
            f"B {joint['separate_E'][1]:.4g}); 2n ln(objective ratio) = {joint['statistic']:.3g} ")
    if not joint["comparable"]:
        return line + f"> {SHARED_E_CRITICAL}: the studies' floors differ, the separate fits stand"
    k = compute_multiplier(*joint["laws"], budget)["k"]
    return line + f"<= {SHARED_E_CRITICAL}: it fits comparably; under it B is worth k = {k:.4g}x A's compute"


def describe_multiplier(multiplier: dict) -> str:
    """The multiplier in a line or two: k with its interval, P(B beats A) and any crossover budgets."""
    low, high = multiplier["interval"]
    percent = f"{100 * multiplier['level']:g}%"
    lines = [(f"B is worth k = {multiplier['k']:.4g}x A's compute at C = {multiplier['C']:.4g} "
              f"({percent} interval [{low:.3g}, {high:.3g}]: A needs k C to reach B's loss "
              f"{multiplier['loss_b']:.4g}); P(B beats A there) = {multiplier['p_b_beats_a']:.2f}")]
    if multiplier["crossovers"]:
        lines.append("the frontiers cross at C = " + ", ".join(f"{c:.3g}" for c in multiplier["crossovers"]))
    return "\n".join(lines)


def describe(result: dict) -> str:
    """The comparison in two lines: both losses at the budget, then the gap and whether it excludes 0."""

    def loss(key):
        point, (low, high) = result[key]
        return f"{point:.4g} (95% confidence interval [{low:.4g}, {high:.4g}])"

    gap, (low, high) = result["gap"]
    verdict = ("excludes 0: the studies differ at this budget" if result["excludes_zero"]
               else "includes 0: no difference resolved at this budget")
    return "\n".join([
        f"compute-optimal loss at C = {result['C']:.4g} FLOPs: A {loss('loss_a')}, B {loss('loss_b')}",
        f"gap B - A = {gap:+.4g} nats/token, 95% confidence interval [{low:+.4g}, {high:+.4g}] "
        f"(bootstrap fits of the two laws, assumed independent); it {verdict}",
    ])


def plot_comparison(result: dict, labels: list[str], path) -> None:
    """Both frontiers with their 95% bands, and the target budget with the gap."""
    import matplotlib.pyplot as plt

    from isoflop.plots import save_figure
    from isoflop.plots.laws import _line_with_band  # the band every law figure draws

    curves = result["curves"]
    fig, ax = plt.subplots(figsize=(7, 5))
    for key, colour, label in (("a", "C0", labels[0]), ("b", "C1", labels[1])):
        _line_with_band(ax, curves["compute"], *curves[key], colour, label)
    gap, (low, high) = result["gap"]
    ax.axvline(result["C"], color="grey", ls="--", lw=1,
               label=f"C = {result['C']:.3g}: gap B - A = {gap:+.3g} [{low:+.3g}, {high:+.3g}]")
    ax.set(xscale="log", xlabel="training compute C (FLOPs)", ylabel="compute-optimal loss (nats/token)",
           title="compute-optimal frontiers")
    ax.legend(fontsize=8)
    save_figure(fig, path)

