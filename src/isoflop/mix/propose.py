"""Choose a mixture: sample candidates around a prior, keep the feasible ones, average the best (RegMix).

Constraints, each optional: the simplex (every candidate is on it), a repetition limit (weight * total_tokens
/ tokens_per_group <= max_epochs, Olmix and the data-constrained literature), per-group bounds, and
KL(w || natural) <= kl_max. Every constraint is convex, so the average of feasible candidates is feasible.

A constraint *binds* when it changed the answer: the top_k candidates under all the other constraints
include at least one that violates it (so dropping it would change the averaged set). `binding` lists those
constraints; `binding_groups` names, for the per-group ones, the groups whose limit those candidates crossed.
"""

from __future__ import annotations

import numpy as np

from isoflop.errors import UserError

# RegMix's sampler (mixture_config/synthesize_mixture.py): the prior is the natural distribution raised to a
# temperature of 0.5 (flattened, so small groups get sampled), the Dirichlet concentration is the prior times a
# strength picked from 15 log-spaced values in [0.1, 5] (small strengths give sparse mixtures, large ones
# mixtures near the prior), and weights under 2e-4 are zeroed before renormalising.
PRIOR_TEMPERATURE = 0.5
STRENGTHS = np.logspace(np.log10(0.1), np.log10(5.0), 15)
MIN_WEIGHT = 2e-4
# a polished mixture this close to a limit has that constraint active
ACTIVE = 1e-6


def sample_mixtures(natural, n: int, *, seed: int, sparsity: float = 0.0, temperature: float = PRIOR_TEMPERATURE,
                    min_weight: float = MIN_WEIGHT) -> np.ndarray:
    """`n` mixtures (n, g) drawn around `natural` as RegMix draws its proxies, deterministic from `seed`.

    `sparsity` is the chance that each group is dropped from a candidate (weight 0; at least one group is
    kept), for searches over few groups, where low Dirichlet concentrations alone rarely zero a group.
    Groups with natural weight 0 are never sampled.
    """
    natural = _as_distribution(natural, "natural")
    if not 0.0 <= sparsity < 1.0:
        raise UserError(f"sparsity {sparsity} must be in [0, 1)")
    if min_weight * len(natural) >= 1.0:
        raise UserError(f"min_weight {min_weight} must be below 1 / {len(natural)} groups")
    rng = np.random.default_rng(seed)
    prior = natural ** temperature
    prior /= prior.sum()
    present = prior > 0
    strengths = STRENGTHS[rng.integers(0, len(STRENGTHS), n)]
    # Dirichlet via normalised Gamma draws, vectorised over rows with different concentrations; draws for
    # tiny concentrations underflow to 0, which is what a sparse Dirichlet draw means at float precision
    gamma = np.zeros((n, len(prior)))
    gamma[:, present] = rng.gamma(strengths[:, None] * prior[present])
    if sparsity > 0:
        gamma *= rng.random(gamma.shape) >= sparsity
    empty = gamma.sum(axis=1) == 0
    # rows left empty keep one group, drawn with the prior
    gamma[np.flatnonzero(empty), rng.choice(len(prior), int(empty.sum()), p=prior)] = 1.0
    weights = gamma / gamma.sum(axis=1, keepdims=True)
    weights[weights < min_weight] = 0.0  # a row's largest weight is at least 1/g > min_weight: none empties
    return weights / weights.sum(axis=1, keepdims=True)


def kl_divergence(weights: np.ndarray, natural: np.ndarray) -> np.ndarray:
    """KL(w || natural) per row, in nats; infinite where w puts weight on a group natural lacks."""
    weights = np.atleast_2d(weights)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(weights > 0, weights * np.log(weights / natural), 0.0)
    return terms.sum(axis=1)


def propose(predictor, natural, *, n_candidates: int = 100_000, top_k: int = 100, seed: int = 0,
            max_epochs: float | None = None, tokens_per_group=None, total_tokens: float | None = None,
            bounds: list[tuple[float, float]] | None = None, kl_max: float | None = None,
            groups: list[str] | None = None, polish: bool = False, sparsity: float = 0.0) -> dict:
    """The mixture that `predictor` predicts lowest under the constraints, RegMix-style.

    Candidates: the natural mixture and n_candidates - 1 draws of `sample_mixtures`. Returns weights (the mean
    of the top_k feasible candidates by predicted loss), predicted (the predictor at those weights),
    top_k_predicted (the mean prediction of those candidates), binding, binding_groups, n_feasible and
    n_candidates; with `polish`, also `polished`: SLSQP from that mixture under the same constraints
    (weights, predicted, and as binding the constraints active at its solution), which helps smooth
    predictors (mixing-law, ridge) and leaves a tree model's piecewise-constant surface where it is.
    """
    natural = _as_distribution(natural, "natural")
    n_groups = len(natural)
    groups = list(groups) if groups is not None else [f"group{j}" for j in range(n_groups)]
    if len(groups) != n_groups:
        raise UserError(f"{len(groups)} group names for {n_groups} groups")
    if top_k < 1 or n_candidates < 1:
        raise UserError(f"top_k ({top_k}) and n_candidates ({n_candidates}) must be at least 1")
    upper, lower = _limits(n_groups, groups, max_epochs, tokens_per_group, total_tokens, bounds)
    if kl_max is not None and kl_max < 0:
        raise UserError(f"kl_max {kl_max} must be >= 0")

    candidates = np.vstack([natural, sample_mixtures(natural, n_candidates - 1, seed=seed, sparsity=sparsity)])
    predicted = np.asarray(predictor.predict(candidates), dtype=float)
    tolerance = 1e-12  # candidates sit exactly on a limit (natural often does): count them inside
    satisfied = {}
    violated_groups = {}
    if "max_epochs" in upper:
        over = candidates > upper["max_epochs"] + tolerance
        satisfied["max_epochs"], violated_groups["max_epochs"] = ~over.any(axis=1), over
    if "bounds" in upper:
        outside = (candidates > upper["bounds"] + tolerance) | (candidates < lower - tolerance)
        satisfied["bounds"], violated_groups["bounds"] = ~outside.any(axis=1), outside
    if kl_max is not None:
        satisfied["kl_max"] = kl_divergence(candidates, natural) <= kl_max + tolerance
    feasible = _all(satisfied.values(), len(candidates))
    n_feasible = int(feasible.sum())
    if n_feasible == 0:
        raise UserError(f"none of {len(candidates)} candidate mixtures satisfies {', '.join(satisfied)} "
                        f"together; loosen a limit or sample more candidates")

    chosen = _top(predicted, feasible, top_k)
    weights = candidates[chosen].mean(axis=0)
    binding, binding_groups = [], {}
    for name, ok in satisfied.items():
        others = _all([mask for other, mask in satisfied.items() if other != name], len(candidates))
        crossed = _top(predicted, others, top_k)
        crossed = crossed[~ok[crossed]]
        if len(crossed):
            binding.append(name)
            if name in violated_groups:
                binding_groups[name] = [groups[j] for j in np.flatnonzero(violated_groups[name][crossed].any(axis=0))]
    result = {"groups": groups, "weights": [float(v) for v in weights],
              "predicted": float(predictor.predict(weights[None])[0]),
              "top_k_predicted": float(predicted[chosen].mean()), "binding": binding,
              "binding_groups": binding_groups, "n_feasible": n_feasible, "n_candidates": len(candidates),
              "top_k": len(chosen)}
    if polish:
        result["polished"] = _polish(predictor, weights, natural, upper, lower, kl_max)
    return result


def _all(masks, n: int) -> np.ndarray:
    """Rows that pass every mask (all n rows when there is none)."""
    return np.logical_and.reduce([np.ones(n, bool), *masks])


def _top(predicted: np.ndarray, mask: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k lowest predictions among `mask`, ties broken by index (stable, deterministic)."""
    index = np.flatnonzero(mask)
    return index[np.argsort(predicted[index], kind="stable")[:k]]


def _limits(n_groups, groups, max_epochs, tokens_per_group, total_tokens, bounds):
    """Per-group upper limits by constraint name ('max_epochs', 'bounds') and the lower bounds."""
    upper = {}
    lower = np.zeros(n_groups)
    if max_epochs is not None:
        if tokens_per_group is None or total_tokens is None:
            raise UserError("max_epochs needs tokens_per_group and total_tokens (the run's training tokens)")
        tokens = np.asarray(tokens_per_group, dtype=float).ravel()
        if len(tokens) != n_groups or (tokens < 0).any() or not np.isfinite(tokens).all():
            raise UserError(f"tokens_per_group must be {n_groups} non-negative counts, one per group")
        if max_epochs <= 0 or total_tokens <= 0:
            raise UserError(f"max_epochs ({max_epochs}) and total_tokens ({total_tokens}) must be positive")
        upper["max_epochs"] = max_epochs * tokens / total_tokens  # weight * total / tokens <= max_epochs
    if bounds is not None:
        if len(bounds) != n_groups:
            raise UserError(f"{len(bounds)} bounds for {n_groups} groups")
        lower = np.array([lo for lo, _ in bounds], dtype=float)
        high = np.array([hi for _, hi in bounds], dtype=float)
        for j in np.flatnonzero(~((0 <= lower) & (lower <= high) & (high <= 1))):
            raise UserError(f"bounds of group {groups[j]}: {lower[j]},{high[j]} must satisfy 0 <= lo <= hi <= 1")
        if lower.sum() > 1 + 1e-9 or high.sum() < 1 - 1e-9:
            raise UserError(f"bounds admit no mixture: lower bounds sum to {lower.sum():g}, "
                            f"upper to {high.sum():g}")
        upper["bounds"] = high
    return upper, lower


def _polish(predictor, start: np.ndarray, natural: np.ndarray, upper: dict, lower: np.ndarray,
            kl_max: float | None) -> dict:
    """SLSQP on the predictor from `start`, within the same constraints; the start if it finds nothing better."""
    from scipy.optimize import minimize

    high = np.minimum.reduce([np.ones_like(start), *upper.values()])
    constraints = [{"type": "eq", "fun": lambda w: w.sum() - 1.0}]
    if kl_max is not None:
        constraints.append({"type": "ineq",
                            "fun": lambda w: kl_max - kl_divergence(np.clip(w, 0.0, 1.0), natural)[0]})
    found = minimize(lambda w: float(predictor.predict(np.clip(w, 0.0, 1.0)[None])[0]), start, method="SLSQP",
                     bounds=list(zip(lower, high)), constraints=constraints, options={"maxiter": 200})
    weights = np.clip(found.x, lower, high)
    weights /= weights.sum()
    if kl_max is not None and kl_divergence(weights, natural)[0] > kl_max:
        # SLSQP meets constraints to ~1e-6: step back toward the feasible start until KL is within the limit
        # (KL is convex, so the segment's infeasible part is one end of it)
        inside, outside = 1.0, 0.0
        for _ in range(60):
            middle = (inside + outside) / 2
            if kl_divergence(middle * start + (1 - middle) * weights, natural)[0] <= kl_max:
                inside = middle
            else:
                outside = middle
        weights = inside * start + (1 - inside) * weights
    value = float(predictor.predict(weights[None])[0])
    within_bounds = ((weights >= lower - 1e-9) & (weights <= high + 1e-9)).all()
    if not within_bounds or value >= float(predictor.predict(start[None])[0]):
        weights, value = start, float(predictor.predict(start[None])[0])
    active = [name for name, limit in upper.items() if (weights >= limit - ACTIVE).any()]
    if "bounds" in upper and "bounds" not in active and (weights[lower > 0] <= lower[lower > 0] + ACTIVE).any():
        active.append("bounds")
    if kl_max is not None and kl_divergence(weights, natural)[0] >= kl_max - ACTIVE:
        active.append("kl_max")
    return {"weights": [float(v) for v in weights], "predicted": value, "binding": active}


def _as_distribution(weights, name: str) -> np.ndarray:
    weights = np.asarray(weights, dtype=float).ravel()
    if not np.isfinite(weights).all() or (weights < 0).any() or abs(weights.sum() - 1.0) > 1e-6:
        raise UserError(f"{name} must be non-negative weights summing to 1 (within 1e-6); got sum "
                        f"{weights.sum():.6g}")
    return weights
