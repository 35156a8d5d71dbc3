"""A whole-curve law across learning-rate schedules: the LR-annealing law of Tissue et al. 2024,

    L(s) = L0 + A * S1(s)^(-alpha) - C * S2(s)

    S1(s) = sum_{i <= s} eta_i                      forward area: how far training has gone
    S2(s) = sum_{i <= s} m_i                        annealing area, with momentum:
    m_i   = lambda * m_{i-1} + (eta_{i-1} - eta_i)  the lr decrease so far, decaying by lambda per step

fitted per model shape on its WSD family: the trunk's constant-lr phase pins L0, A and alpha, the branched
cooldowns pin C, and the longest cooldown is held out and predicted. The annealing memory lambda is one
constant for the whole study (Tissue et al. fix it at 0.999 for runs of tens of thousands of steps; its right
value depends on the schedule's length, which a fixed constant cannot know): the lambda whose family fits
have the least total squared error on the fitted runs, found by a grid over the memory 1 / (1 - lambda) in
steps and a bounded refinement. The held-out cooldowns never enter its choice, so they still judge the law. The lr is divided by the peak, so S1 is
in peak-lr steps and C in nats per peak-lr step. The annealing momentum starts after warmup (a rising lr is
not annealing). The fit is in log space (relative residuals) on bin means of the per-step train loss (the
raw loss is one small batch's; bins average its noise), multi-started from a grid in alpha, each start solved
exactly for the linear parameters. A block bootstrap of the residuals gives 95% intervals; a parameter at a
bound or with an interval wider than itself is a warning, not a number to trust.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from isoflop.train.schedule import lr_schedule

PAPER_DECAY_FACTOR = 0.999  # Tissue et al.'s lambda: a cooldown's gain arrives over about 1 / (1 - lambda) steps
SENSITIVITY_FACTORS = (PAPER_DECAY_FACTOR,)  # refitted with these lambdas too, to show how much the fitted one matters
MEMORY_GRID = np.geomspace(3.0, 3000.0, 13)  # candidate memories 1 / (1 - lambda), in steps
BINS_PER_SEGMENT = 200  # bin means per constant phase or cooldown: enough shape, a fraction of the noise
FIT_FROM_FRAC = 0.1  # the fit skips the first 10% of the constant phase: the fast early drop is no power law
FINAL_WINDOW_FRAC = 0.02  # a run's final loss: the mean train loss over its last 2% of steps (at least 10)
TRUST_TOLERANCE = 0.01  # a held-out final loss predicted within 1% (about a cooldown's gain at this scale)
BOOTSTRAP_CAP = 50  # block-bootstrap refits per shape: each is a full refit of a few hundred points
BLOCK = 20  # bootstrap block length in bins: neighbouring bin means share the curve's slow wander
BOUNDS = {"A": (1e-6, 1e6), "alpha": (0.01, 3.0), "C": (0.0, 10.0)}  # L0's: [0, the lowest loss fitted]
ALPHA_STARTS = np.geomspace(0.05, 2.0, 8)
NAMES = ("L0", "A", "alpha", "C")


def annealing_areas(rates: np.ndarray, warmup_steps: int, decay_factor: float = PAPER_DECAY_FACTOR):
    """S1 and S2 after k updates, k = 0 .. len(rates): entry k is what the loss logged at step k + 1 has seen."""
    s1 = np.concatenate([[0.0], np.cumsum(rates)])
    decrease = np.zeros(len(rates))
    decrease[1:] = rates[:-1] - rates[1:]
    decrease[: warmup_steps + 1] = 0.0
    momentum = np.zeros(len(rates))
    carried = 0.0
    for i, drop in enumerate(decrease):  # a first-order recursion: a loop of a few thousand floats
        carried = decay_factor * carried + drop
        momentum[i] = carried
    return s1, np.concatenate([[0.0], np.cumsum(momentum)])


def law_loss(params: dict, s1, s2):
    """The law's loss at areas S1, S2 (in peak-lr steps)."""
    return params["L0"] + params["A"] * np.asarray(s1) ** -params["alpha"] - params["C"] * np.asarray(s2)


def binned(s1, s2, loss, bins: int = BINS_PER_SEGMENT) -> np.ndarray:
    """Rows (S1, S2, loss) averaged over consecutive runs of steps, at most `bins` rows."""
    edges = np.linspace(0, len(loss), min(bins, len(loss)) + 1).astype(int)
    cols = [np.add.reduceat(np.asarray(col, float), edges[:-1]) / np.diff(edges) for col in (s1, s2, loss)]
    return np.column_stack(cols)


def _params(x) -> dict:
    return {"L0": float(x[0]), "A": float(np.exp(x[1])), "alpha": float(x[2]), "C": float(x[3])}


def _solve(points: np.ndarray, upper_l0: float, starts):
    """The least-squares fit of log L over the points, best of the starts, in x = (L0, ln A, alpha, C); returns
    x, its cost and the residual function."""
    from scipy.optimize import least_squares

    s1, s2, loss = points.T
    log_loss = np.log(loss)

    def residuals(x):
        predicted = x[0] + np.exp(x[1]) * s1 ** -x[2] - x[3] * s2
        return np.log(np.maximum(predicted, 1e-12)) - log_loss

    lower = [0.0, np.log(BOUNDS["A"][0]), BOUNDS["alpha"][0], BOUNDS["C"][0]]
    upper = [upper_l0, np.log(BOUNDS["A"][1]), BOUNDS["alpha"][1], BOUNDS["C"][1]]
    best = None
    for start in starts:
        x0 = np.clip(start, np.add(lower, 1e-9), np.subtract(upper, 1e-9))
        fit = least_squares(residuals, x0, bounds=(lower, upper), method="trf", x_scale="jac")
        if best is None or fit.cost < best.cost:
            best = fit
    return best.x, best.cost, residuals


def _linear_starts(points: np.ndarray, upper_l0: float) -> list[np.ndarray]:
    """One start per alpha on a grid: L0, A and C by linear least squares given alpha (the law is linear in them)."""
    s1, s2, loss = points.T
    starts = []
    for alpha in ALPHA_STARTS:
        design = np.column_stack([np.ones_like(s1), s1 ** -alpha, -s2])
        l0, a, c = np.linalg.lstsq(design, loss, rcond=None)[0]
        starts.append(np.array([min(max(l0, 0.0), upper_l0), np.log(max(a, BOUNDS["A"][0])), alpha, max(c, 0.0)]))
    return starts


def _best_start(points: np.ndarray, upper_l0: float) -> np.ndarray:
    """The linear start with the least log-space error: one nonlinear solve instead of one per start, for the
    many fits of the memory's search (the final fit at the chosen memory still tries every start)."""
    s1, s2, loss = points.T

    def log_error(x):
        predicted = x[0] + np.exp(x[1]) * s1 ** -x[2] - x[3] * s2
        return np.sum((np.log(np.maximum(predicted, 1e-12)) - np.log(loss)) ** 2)

    return min(_linear_starts(points, upper_l0), key=log_error)


def fit_annealing_law(points: np.ndarray, *, bootstrap: int = BOOTSTRAP_CAP, seed: int = 0) -> dict:
    """Fit the law to rows (S1, S2, loss); parameters, 95% block-bootstrap intervals and warnings."""
    upper_l0 = float(points[:, 2].min())
    x, cost, residuals = _solve(points, upper_l0, _linear_starts(points, upper_l0))
    params = _params(x)
    warnings = []
    for name, (low, high) in {"L0": (0.0, upper_l0), **BOUNDS}.items():
        if min(params[name] - low, high - params[name]) <= 1e-4 * max(abs(params[name]), 1e-6):
            warnings.append(f"{name} = {params[name]:.4g} is at its bound [{low:.4g}, {high:.4g}]: not determined")
    intervals = {}
    if bootstrap:
        rng = np.random.default_rng(seed)
        resid = residuals(x)
        predicted = points[:, 2] * np.exp(resid)
        n_blocks = -(-len(points) // BLOCK)
        samples = []
        for _ in range(min(bootstrap, BOOTSTRAP_CAP)):
            starts_at = rng.integers(0, max(1, len(points) - BLOCK + 1), n_blocks)
            drawn = np.concatenate([resid[i:i + BLOCK] for i in starts_at])[: len(points)]
            resampled = points.copy()
            resampled[:, 2] = predicted * np.exp(-drawn)
            sample_x, _, _ = _solve(resampled, float(resampled[:, 2].min()), [x])
            samples.append(list(_params(sample_x).values()))
        samples = np.array(samples)
        for j, name in enumerate(NAMES):
            low, high = np.percentile(samples[:, j], [2.5, 97.5])
            intervals[name] = [float(low), float(high)]
            if high - low > abs(params[name]) and not any(w.startswith(f"{name} =") for w in warnings):
                warnings.append(f"{name} = {params[name]:.4g} has a 95% interval [{low:.4g}, {high:.4g}] wider "
                                "than itself: poorly determined")
    rmse = float(np.sqrt(2 * cost / len(points)))
    return {"params": params, "ci95": intervals, "rmse_log": rmse, "n_points": len(points), "warnings": warnings}


def _train_curve(curve: pd.DataFrame) -> pd.DataFrame:
    train = curve[curve["kind"] == "train"].sort_values("step")
    return train[np.isfinite(train["train_loss"].to_numpy(float))]


def _segment(curve: pd.DataFrame, s1, s2, first: int, last: int) -> np.ndarray:
    """The curve's steps first .. last (inclusive) as binned (S1, S2, loss) rows."""
    part = curve[(curve["step"] >= first) & (curve["step"] <= last)]
    k = part["step"].to_numpy(int) - 1  # the loss at step k + 1 has seen k updates
    return binned(s1[k], s2[k], part["train_loss"].to_numpy(float))


def _areas(family: pd.DataFrame, trains: dict[str, dict], decay_factor: float) -> dict[str, tuple]:
    """(S1, S2) per run of the family, from its lr schedule as its spec defines it."""
    areas = {}
    for run in family.itertuples():
        train = trains[run.run_id]
        rates = lr_schedule(int(run.steps), lr=train["lr"], schedule=train["schedule"],
                            warmup_steps=train["warmup_steps"], min_lr_frac=train["min_lr_frac"],
                            decay_frac=train["decay_frac"], decay_shape=train["decay_shape"])
        areas[run.run_id] = annealing_areas(rates / train["lr"], train["warmup_steps"], decay_factor)
    return areas


def _fitted_points(family: pd.DataFrame, curves: dict[str, pd.DataFrame], trains: dict[str, dict],
                   areas: dict[str, tuple]) -> np.ndarray:
    """The binned rows a family's law is fitted to: the constant phase once (every branch shares it), from the
    end of warmup to the held-out (longest) run's branch, and every cooldown but the held-out one."""
    held = family.iloc[-1]
    warmup = int(trains[held.run_id]["warmup_steps"])
    first = max(warmup + 1, round(FIT_FROM_FRAC * held.branch_step))
    segments = [_segment(_train_curve(curves[held.run_id]), *areas[held.run_id], first, int(held.branch_step))]
    for run in family.iloc[:-1].itertuples():
        segments.append(_segment(_train_curve(curves[run.run_id]), *areas[run.run_id], int(run.branch_step) + 1,
                                 int(run.steps)))
    return np.concatenate(segments)


def fit_decay_factor(families: list[pd.DataFrame], curves: dict[str, pd.DataFrame],
                     trains: dict[str, dict]) -> dict:
    """The study's annealing memory: the lambda minimising the summed least-squares cost of every family's fit
    on its fitted runs (held-out cooldowns unused). Returns `decay_factor`, `memory_steps` = 1 / (1 - lambda)
    and `at_bound` (the optimum at an end of MEMORY_GRID: not determined by these curves)."""
    from scipy.optimize import minimize_scalar

    families = [family.sort_values("steps") for family in families]

    def cost(log_memory: float) -> float:
        factor = 1.0 - np.exp(-log_memory)
        total = 0.0
        for family in families:
            points = _fitted_points(family, curves, trains, _areas(family, trains, factor))
            upper_l0 = float(points[:, 2].min())
            total += _solve(points, upper_l0, [_best_start(points, upper_l0)])[1]
        return total

    grid = np.log(MEMORY_GRID)
    costs = [cost(x) for x in grid]
    best = int(np.argmin(costs))
    at_bound = best in (0, len(grid) - 1)
    log_memory = grid[best]
    if not at_bound:
        refined = minimize_scalar(cost, bounds=(grid[best - 1], grid[best + 1]), method="bounded",
                                  options={"xatol": 0.01})
        log_memory = float(refined.x) if refined.fun <= costs[best] else log_memory
    memory = float(np.exp(log_memory))
    return {"decay_factor": 1.0 - 1.0 / memory, "memory_steps": memory, "at_bound": at_bound}


def fit_schedule_family(family: pd.DataFrame, curves: dict[str, pd.DataFrame], trains: dict[str, dict], *,
                        bootstrap: int = BOOTSTRAP_CAP, seed: int = 0, decay_factor: float = PAPER_DECAY_FACTOR) -> dict:
    """One shape's law from its WSD family (the rows of the runs table sharing a trunk): fitted on the constant
    phase and every cooldown but the longest, which it predicts (final loss and curve)."""
    family = family.sort_values("steps")
    held = family.iloc[-1]
    areas = _areas(family, trains, decay_factor)
    held_curve = _train_curve(curves[held.run_id])
    law = fit_annealing_law(_fitted_points(family, curves, trains, areas), bootstrap=bootstrap, seed=seed)

    steps = int(held.steps)
    window = max(10, round(FINAL_WINDOW_FRAC * steps))
    final = held_curve[held_curve["step"] > steps - window]
    s1, s2 = areas[held.run_id]
    k = final["step"].to_numpy(int) - 1
    observed = float(final["train_loss"].mean())
    predicted = float(law_loss(law["params"], s1[k], s2[k]).mean())
    cooldown = _segment(held_curve, s1, s2, int(held.branch_step) + 1, steps)
    curve_error = np.abs(law_loss(law["params"], cooldown[:, 0], cooldown[:, 1]) / cooldown[:, 2] - 1)
    rel_error = predicted / observed - 1
    return {**law, "held_out": str(held.run_id), "fitted_runs": [str(r) for r in family["run_id"].iloc[:-1]],
            "d_model": int(held.d_model), "N": int(held.N), "peak_lr": float(trains[held.run_id]["lr"]),
            "final_window_steps": int(window), "observed_final": observed, "predicted_final": predicted,
            "rel_error": float(rel_error), "cooldown_mean_abs_rel_error": float(curve_error.mean()),
            "within_tolerance": bool(abs(rel_error) <= TRUST_TOLERANCE)}


def fit_schedule_laws(runs: pd.DataFrame, curves: dict[str, pd.DataFrame], trains: dict[str, dict], *,
                      bootstrap: int = BOOTSTRAP_CAP, seed: int = 0, decay_factor: float | None = None) -> dict:
    """The law for every WSD family with a cooldown to fit and one to hold out: trunk id -> result, and the
    summary the report states (how many held-out cooldowns were predicted within TRUST_TOLERANCE). The
    annealing memory is fitted (`fit_decay_factor`) unless `decay_factor` fixes it."""
    from isoflop.fit.study import finished

    ok = finished(runs)
    branched = ok[ok["trunk_id"].notna()] if "trunk_id" in ok else ok.iloc[:0]
    usable, skipped = {}, []
    for trunk_id, family in branched.groupby("trunk_id", sort=True):
        if len(family) < 2:
            skipped.append(f"trunk {trunk_id}: {len(family)} finished cooldown(s), need 2 (one fitted, one held out)")
        else:
            usable[str(trunk_id)] = family
    memory = {"decay_factor": decay_factor, "memory_steps": None, "at_bound": False}
    if decay_factor is None and usable:
        memory = fit_decay_factor(list(usable.values()), curves, trains)
    factor = memory["decay_factor"] if memory["decay_factor"] is not None else PAPER_DECAY_FACTOR
    families = {trunk_id: fit_schedule_family(family, curves, trains, bootstrap=bootstrap, seed=seed,
                                              decay_factor=factor)
                for trunk_id, family in usable.items()}
    if memory["at_bound"]:
        for family in families.values():
            family["warnings"].append(f"the annealing memory is at the end of its grid ({memory['memory_steps']:.0f} "
                                      "steps): not determined by these curves")
    errors = [abs(f["rel_error"]) for f in families.values()]
    # the same fits with the paper's lambda, unbootstrapped: whether the fitted memory is what the held-out
    # errors hinge on (a diagnostic)
    sensitivity = {str(other): max((abs(fit_schedule_family(family, curves, trains, bootstrap=0,
                                                            decay_factor=other)["rel_error"])
                                    for family in usable.values()), default=None)
                   for other in SENSITIVITY_FACTORS if other != factor}
    return {"law": "L = L0 + A*S1^-alpha - C*S2 (Tissue et al. 2024)", "decay_factor": round(factor, 6),
            "decay_factor_fitted": decay_factor is None, "memory_steps": memory["memory_steps"],
            "tolerance": TRUST_TOLERANCE, "families": families, "skipped": skipped,
            "decay_factor_sensitivity": sensitivity,
            "n_within_tolerance": sum(f["within_tolerance"] for f in families.values()),
            "max_abs_rel_error": max(errors) if errors else None,
            "trusted": bool(families) and all(f["within_tolerance"] and not f["warnings"] for f in families.values())}
