"""Task scaling laws: the OLMo ladder's two-step chained forecast (Bhagia et al. 2024), with intervals.

Step 1: a task's bits per byte (bpb) of the correct continuation as L(N, D) = E + A/N^alpha + B/D^beta, fitted
on each training run's final value (the mean of its last `FINAL_WINDOW` evaluations) by isoflop's Chinchilla fit
(`isoflop.fit.power.fit_chinchilla`: Huber loss on log residuals, global search; on the ladder it reaches the
published paper's optimum). Step 2: accuracy as a sigmoid of task bpb, Acc = a / (1 + exp(-k (bpb - x0))) + b,
fitted by least squares on every checkpoint of every training run after the first `WARMUP_SHARE` of each run
(both series smoothed by a trailing moving average of `FINAL_WINDOW`), with the published helper point
(bpb 0, accuracy 1). The chained forecast feeds step 1's predicted bpb into step 2.

Intervals come from draws of the whole chain: each draw takes one bootstrap fit of step 1 (resampled runs), adds
a resampled step-1 residual (log scale, inflated by sqrt(n / (n - p)), as `isoflop.fit.residuals` does), maps
it through one bootstrap fit of step 2 (runs resampled whole, so a run's correlated checkpoints move together),
and adds a resampled step-2 residual. They cover the laws' uncertainty and a run's noise; they do not cover a
target trained differently from the ladder (data, schedule), which is what the backtest exposes.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from isoflop.errors import UserError
from isoflop.fit.bootstrap import percentile_interval
from isoflop.fit.laws import CHINCHILLA
from isoflop.fit.residuals import residual_summary
from isoflop.task_laws.ladder import Ladder

FINAL_WINDOW = 5  # evaluations averaged: step 1's final value per run, step 2's smoothing
WARMUP_SHARE = 0.1  # share of each run's first checkpoints that step 2 drops
LEVELS = (0.90, 0.95)
SIGMOID_FORM = "Acc = a / (1 + exp(-k (bpb - x0))) + b"
SIGMOID_NAMES = ("a", "x0", "k", "b")
# a in [-1, 0] (accuracy falls as bpb rises), x0 and k non-negative, b in [0, 1]: the published bounds
SIGMOID_BOUNDS = ([-1.0, 0.0, 0.0, 0.0], [0.0, np.inf, np.inf, 1.0])
DRAWS = 4000  # chained draws per prediction (bootstrap fits x residual draws)


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over `window` points; the first points average what there is so far."""
    total = np.cumsum(np.asarray(values, dtype=float))
    out = total.copy()
    out[window:] = total[window:] - total[:-window]
    count = np.minimum(np.arange(1, len(total) + 1), window)
    return out / count


def step1_points(ladder: Ladder, task: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """N, D and final task bpb (mean of the last FINAL_WINDOW evaluations) per training run."""
    n = np.array([run.N for run in ladder.train])
    d = np.array([run.D for run in ladder.train])
    bpb = np.array([run.bpb[task][-FINAL_WINDOW:].mean() for run in ladder.train])
    return n, d, bpb


def step2_points(ladder: Ladder, task: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smoothed (bpb, accuracy) of every checkpoint after each run's warm-up share, and each point's run index."""
    xs, ys, owner = [], [], []
    for index, run in enumerate(ladder.train):
        # a run with only its final evaluation (a study's runs table) keeps it
        start = min(int(np.ceil(WARMUP_SHARE * len(run.bpb[task]))), len(run.bpb[task]) - 1)
        xs.append(moving_average(run.bpb[task][start:], FINAL_WINDOW))
        ys.append(moving_average(run.accuracy[task][start:], FINAL_WINDOW))
        owner.append(np.full(len(xs[-1]), index))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(owner)


def sigmoid(bpb, params) -> np.ndarray:
    """Accuracy at `bpb` for sigmoid `params` (..., 4) as (a, x0, k, b); `bpb` broadcasts against params[..., 0]."""
    a, x0, k, b = np.moveaxis(np.asarray(params, dtype=float), -1, 0)
    with np.errstate(over="ignore"):
        return a / (1.0 + np.exp(-k * (np.asarray(bpb, dtype=float) - x0))) + b


def fit_sigmoid(bpb: np.ndarray, accuracy: np.ndarray, chance: float, start=None) -> np.ndarray:
    """Least-squares sigmoid of accuracy on bpb, with the helper point (0, 1): a perfect model is always right.
    Seeded at the published start (a = chance - 1, x0 = 0.9, k = 3, b = 1) unless `start` is given."""
    from scipy.optimize import OptimizeWarning, curve_fit

    x = np.append(bpb, 0.0)
    y = np.append(accuracy, 1.0)
    p0 = [chance - 1.0, 0.9, 3.0, 1.0] if start is None else np.clip(start, *SIGMOID_BOUNDS)

    def model(values, a, x0, k, b):
        return sigmoid(values, np.array([a, x0, k, b]))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)
        try:
            params, _ = curve_fit(model, x, y, p0=p0, bounds=SIGMOID_BOUNDS, maxfev=500_000)
        except (RuntimeError, ValueError) as err:
            raise UserError(f"the sigmoid of accuracy on task bpb did not converge ({err})") from None
    return params


def fit_task_law(ladder: Ladder, task: str, *, bootstrap: int = 200, seed: int = 0) -> dict:
    """Step 1 and step 2 of one task, each with `bootstrap` refits over resampled runs (seeded by `seed`)."""
    from isoflop.fit.power import fit_chinchilla

    n, d, bpb = step1_points(ladder, task)
    try:
        step1 = fit_chinchilla(n, d, bpb, bootstrap=bootstrap, seed=seed)
    except UserError as err:
        raise UserError(f"task {task}, step 1 (bpb from N and D): {err}") from None
    x, y, owner = step2_points(ladder, task)
    finite = np.isfinite(x) & np.isfinite(y)
    x, y, owner = x[finite], y[finite], owner[finite]
    if len(x) <= len(SIGMOID_NAMES):
        raise UserError(f"task {task}, step 2: {len(x)} finite (bpb, accuracy) points; a sigmoid needs at least 5")
    params = fit_sigmoid(x, y, ladder.chance[task])
    samples = _sigmoid_bootstrap(x, y, owner, len(ladder.train), params, ladder.chance[task], bootstrap, seed)
    return {
        "task": task,
        "step1": step1,
        "step2": {
            "form": SIGMOID_FORM,
            "params": dict(zip(SIGMOID_NAMES, params)),
            "n_points": len(x),
            "residuals": residual_summary(y, sigmoid(x, params), "raw", len(SIGMOID_NAMES)),
            "bootstrap": {"resamples": bootstrap, "seed": seed,
                          "samples": None if samples is None else dict(zip(SIGMOID_NAMES, samples.T))},
        },
    }


def _sigmoid_bootstrap(x, y, owner, n_runs, params, chance, bootstrap, seed) -> np.ndarray | None:
    """Sigmoid refits on `bootstrap` resamples of whole runs, warm-started at the full fit: (B, 4)."""
    if not bootstrap:
        return None
    rng = np.random.default_rng([seed, 2])
    members = [np.flatnonzero(owner == run) for run in range(n_runs)]
    samples = np.full((bootstrap, len(SIGMOID_NAMES)), np.nan)
    for i in range(bootstrap):
        rows = np.concatenate([members[run] for run in rng.integers(0, n_runs, n_runs)])
        try:
            samples[i] = fit_sigmoid(x[rows], y[rows], chance, start=params)
        except UserError:
            continue  # counted as a failed refit: its row stays nan and percentiles skip it
    return samples


def fit_task_laws(ladder: Ladder, *, bootstrap: int = 200, seed: int = 0) -> dict:
    """Every task's chained law, plus the ladder's held-out targets and their observed values, as JSON-ready."""
    from isoflop.fit.checks import to_jsonable

    laws = {task: fit_task_law(ladder, task, bootstrap=bootstrap, seed=seed) for task in ladder.tasks}
    targets = [{"name": run.name, "N": run.N, "D": run.D,
                # the observed values are smoothed like the fitted ones: the mean of the last FINAL_WINDOW
                "bpb": {task: float(run.bpb[task][-FINAL_WINDOW:].mean()) for task in ladder.tasks},
                "accuracy": {task: float(run.accuracy[task][-FINAL_WINDOW:].mean()) for task in ladder.tasks}}
               for run in ladder.targets]
    return to_jsonable({
        "law": "task_chained",
        "method": "Bhagia et al. 2024: step 1 task bpb = E + A/N^alpha + B/D^beta on final values "
                  f"(mean of last {FINAL_WINDOW}); step 2 {SIGMOID_FORM} on checkpoints after the first "
                  f"{WARMUP_SHARE:.0%} of each run",
        "source": ladder.source,
        "n_runs": len(ladder.train),
        "tasks": laws,
        "targets": targets,
    })


def predict_task(law: dict, N: float, D: float, *, seed: int = 0) -> dict:
    """One task's chained forecast at (N, D): step-1 bpb and accuracy, each with its 90% and 95% intervals."""
    step1, step2 = law["step1"], law["step2"]
    x = np.array([[N, D]], dtype=float)
    rng = np.random.default_rng(seed)
    # a degenerate law (an exponent or coefficient at the edge of floating point) predicts inf or nan; the
    # caller reports it, so numpy's warnings about it would only repeat the news
    with np.errstate(all="ignore"):
        bpb = float(CHINCHILLA.predict(_params(step1, CHINCHILLA.names), x)[0, 0])
        accuracy = float(sigmoid(bpb, _params(step2, SIGMOID_NAMES))[0])
        bpb_fits = CHINCHILLA.predict(_samples(step1, CHINCHILLA.names), x)[:, 0]
        repeats = max(1, DRAWS // len(bpb_fits))
        bpb_draws = np.repeat(bpb_fits, repeats) * np.exp(_noise(step1["residuals"], repeats * len(bpb_fits), rng))
        sigmoid_fits = _samples(step2, SIGMOID_NAMES)
        chosen = sigmoid_fits[np.arange(len(bpb_draws)) % len(sigmoid_fits)]
        # accuracy is a share: a draw past 0 or 1 (a residual added near the ceiling) is clipped there
        accuracy_draws = np.clip(sigmoid(bpb_draws, chosen) + _noise(step2["residuals"], len(bpb_draws), rng), 0, 1)
    row = {"predicted": accuracy, "bpb_predicted": bpb}
    for level in LEVELS:
        pct = round(100 * level)
        if np.isfinite(bpb):
            row[f"lo{pct}"], row[f"hi{pct}"] = percentile_interval(accuracy_draws, level)
            row[f"bpb_lo{pct}"], row[f"bpb_hi{pct}"] = percentile_interval(bpb_draws, level)
        else:
            row.update(dict.fromkeys((f"lo{pct}", f"hi{pct}", f"bpb_lo{pct}", f"bpb_hi{pct}"), np.nan))
    return {key: float(value) for key, value in row.items()}


def _params(fit: dict, names) -> np.ndarray:
    return np.array([[fit["params"][name] for name in names]], dtype=float)


def _samples(fit: dict, names) -> np.ndarray:
    """Bootstrap fits (B, P) with their failed refits dropped; the point fit alone without bootstrap."""
    samples = (fit.get("bootstrap") or {}).get("samples")
    if not samples:
        return _params(fit, names)
    stacked = np.column_stack([np.asarray(samples[name], dtype=float) for name in names])
    stacked = stacked[np.isfinite(stacked).all(axis=1)]
    return stacked if len(stacked) else _params(fit, names)


def _noise(residuals: dict, size: int, rng: np.random.Generator) -> np.ndarray:
    """A new run's noise: `size` resampled residuals, inflated for the parameters fitted (see residuals.py)."""
    pool = np.asarray(residuals["values"], dtype=float) * residuals["inflation"]
    return rng.choice(pool, size=size) if len(pool) else np.zeros(size)


def predict_task_laws(laws: dict, N: float, D: float, *, seed: int = 0):
    """A table with one row per task: task, predicted, lo90, hi90, lo95, hi95, then the step-1 bpb forecast."""
    import pandas as pd

    if laws.get("law") != "task_chained" or "tasks" not in laws:
        raise UserError("not a task law file (expected the output of `isoflop tasks fit`)")
    if not (np.isfinite([N, D]).all() and N > 0 and D > 0):
        raise UserError(f"--N and --D must be positive and finite, got N={N:g}, D={D:g}")
    rows = [{"task": task, **predict_task(law, N, D, seed=seed)} for task, law in laws["tasks"].items()]
    columns = ["task", "predicted", "lo90", "hi90", "lo95", "hi95",
               "bpb_predicted", "bpb_lo90", "bpb_hi90", "bpb_lo95", "bpb_hi95"]
    return pd.DataFrame(rows)[columns]


def backtest_largest_size(ladder: Ladder, *, bootstrap: int = 200, seed: int = 0) -> dict:
    """Refit every task on all but the largest model size and forecast that size's runs, by each form: the
    observed final accuracy (mean of the last FINAL_WINDOW evaluations) against the forecast and its intervals.
    Per form: the mean |error| and how many observations its 90% and 95% intervals hold; `ranking` orders the
    forms by mean |error|. The chained form's own summary is at the top level (its `predictions` per run)."""
    from dataclasses import replace

    from isoflop.fit.checks import to_jsonable

    largest = max(run.N for run in ladder.train)
    held_out = [run for run in ladder.train if run.N == largest]
    smaller = replace(ladder, train=[run for run in ladder.train if run.N < largest], targets=[])
    if len({run.N for run in smaller.train}) < 2:
        raise UserError("a backtest needs at least three model sizes (two to fit, the largest to forecast)")
    laws = fit_task_laws(smaller, bootstrap=bootstrap, seed=seed)
    rows = []
    for task, law in laws["tasks"].items():
        for run in held_out:
            forecast = predict_task(law, run.N, run.D, seed=seed)
            rows.append({"task": task, "run": run.name, "observed": _final_accuracy(run, task), **forecast})
    chained = _scores(rows)
    direct = _scores(direct_backtest(smaller, held_out, bootstrap=bootstrap, seed=seed))
    forms = {"chained": chained["mean_abs_error"], "direct": direct["mean_abs_error"]}
    return to_jsonable({"held_out_N": largest, "n_fit_runs": len(smaller.train), **chained, "predictions": rows,
                        "direct": direct, "ranking": sorted((f for f in forms if math.isfinite(forms[f])),
                                                            key=forms.get)})


def _final_accuracy(run, task: str) -> float:
    return float(run.accuracy[task][-FINAL_WINDOW:].mean())


def _scores(rows: list[dict]) -> dict:
    """Mean |error| of forecasts `rows` (observed, predicted, lo90..hi95) and how many each interval holds."""
    errors = np.array([row["predicted"] - row["observed"] for row in rows], dtype=float)
    summary = {"n_predictions": len(rows),
               "mean_abs_error": float(np.mean(np.abs(errors))) if len(rows) else float("nan")}
    for level in LEVELS:
        pct = round(100 * level)
        summary[f"inside{pct}"] = int(sum(row[f"lo{pct}"] <= row["observed"] <= row[f"hi{pct}"] for row in rows))
    return summary


# ---- the direct form: accuracy from compute alone, at a fixed number of tokens per parameter ------------------

DIRECT_FORM = "-log Acc = A C^-alpha, C = 6 N D, fitted per tokens-per-parameter group"


def tokens_per_parameter_groups(runs) -> dict[float, list]:
    """Runs grouped by D/N, to a tenth of an octave (the ladder's 1x to 10x Chinchilla multiples differ by more)."""
    groups: dict[float, list] = {}
    for run in runs:
        groups.setdefault(round(math.log2(run.D / run.N), 1), []).append(run)
    return groups


def direct_backtest(smaller: Ladder, held_out: list, *, bootstrap: int, seed: int) -> list[dict]:
    """Forecasts of `held_out` runs by the direct form fitted on the runs of `smaller` with the same D/N: per task,
    -log accuracy as a power law in compute (isoflop's one-variable law without offset), with its intervals."""
    from isoflop.fit.power import fit_curve
    from isoflop.fit.predict import predict_intervals

    groups = tokens_per_parameter_groups(smaller.train)
    rows = []
    for run in held_out:
        group = groups.get(round(math.log2(run.D / run.N), 1), [])
        if len({member.N for member in group}) < 3:
            continue  # two parameters need three sizes to leave a residual
        compute = np.array([6.0 * member.N * member.D for member in group])
        for task in smaller.tasks:
            loss = -np.log([_final_accuracy(member, task) for member in group])
            law = fit_curve(compute, loss, variable="C", offset=False, bootstrap=bootstrap, seed=seed)
            row = {"task": task, "run": run.name, "observed": _final_accuracy(run, task)}
            for level in LEVELS:
                pct = round(100 * level)
                bands = predict_intervals(law, C=6.0 * run.N * run.D, level=level, seed=seed)
                row["predicted"] = float(np.exp(-bands["predicted"][0]))
                row[f"lo{pct}"], row[f"hi{pct}"] = float(np.exp(-bands["pred_hi"][0])), float(np.exp(-bands["pred_lo"][0]))
            rows.append(row)
    return rows
