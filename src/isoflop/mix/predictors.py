"""Predict a proxy run's loss from its mixture weights: three regressors, their JSON form, and their scores.

- `lgbm`: gradient-boosted trees with RegMix's settings (Liu et al. 2024, `regression_fitting/regression.ipynb`
  in sail-sg/regmix): objective `regression` (L2), `gbdt`, learning rate 1e-2, up to 1000 boosting rounds,
  early stopping after 3 rounds without improvement of the L2 loss on held-out mixtures; every other setting
  is LightGBM's default (num_leaves 31, min_data_in_leaf 20), except where noted in `_LGBM_PARAMS`.
- `mixing-law`: the Data Mixing Laws form L(r) = c + k exp(sum_j t_j r_j) (Ye et al. 2024), fitted by a Huber
  loss on log residuals from several starts.
- `ridge`: log L = a + sum_j b_j r_j by ridge regression (RegMix's linear baseline, in log space: the
  mixing law with c = 0), its penalty chosen by leave-one-out error.

Each fit is a pure function of (weights, targets, seed). Predictors serialise to plain JSON (`to_json`,
`from_json`): never pickle, so a saved fit is readable, diffable, and safe to load.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from isoflop.errors import UserError

MODELS = ("lgbm", "mixing-law", "ridge")

# RegMix's notebook: objective regression, gbdt, learning_rate 1e-2, num_iterations 1000, early stopping 3.
# Ours: deterministic=True, force_col_wise and one thread, so a fit is bit-identical on any machine;
# min_data_in_leaf is LightGBM's 20 from 160 mixtures up and an eighth of the mixtures below (at least 1),
# else a search round of a few dozen proxies would fit a constant.
_LGBM_PARAMS = {"objective": "regression", "boosting_type": "gbdt", "learning_rate": 1e-2,
                "deterministic": True, "force_col_wise": True, "num_threads": 1, "verbosity": -1}
LGBM_MAX_ROUNDS = 1000
LGBM_EARLY_STOPPING = 3
# RegMix held out 128 of its 1000 proxies for early stopping; we hold out the same share (1/8), seeded, then
# refit on every mixture for the rounds found. Below this many mixtures a held-out eighth is too few points
# to stop on, and the model trains the full 1000 rounds.
LGBM_MIN_ROWS_TO_STOP_EARLY = 40

# Huber delta on log residuals: about 1% of the loss, the scale of proxy-run noise; points further off are
# down-weighted as outliers (a diverged or mislabelled proxy).
MIXING_LAW_HUBER_DELTA = 1e-2
MIXING_LAW_RANDOM_STARTS = 8
# A weak Gaussian prior on the law's exponents, as extra residuals (PRIOR * t_j against log-loss residuals):
# with a handful of proxies per exponent the unpenalised fit can drive t to where exp(t . r) overflows on
# a held-out mixture (cross-validated MAEs of 1e19 were seen with 16 proxies over 6 groups); with hundreds of
# proxies the data outweigh it.
MIXING_LAW_EXPONENT_PRIOR = 3e-3

RIDGE_ALPHAS = np.logspace(-6, 3, 19)


def _as_weights(weights, n_groups: int | None = None) -> np.ndarray:
    weights = np.atleast_2d(np.asarray(weights, dtype=float))
    if weights.ndim != 2:
        raise UserError(f"mixture weights must be a (mixtures, groups) array, got shape {weights.shape}")
    if n_groups is not None and weights.shape[1] != n_groups:
        raise UserError(f"mixture weights have {weights.shape[1]} groups; the predictor was fitted on {n_groups}")
    if not np.isfinite(weights).all():
        raise UserError("mixture weights contain NaN or infinity")
    return weights


@dataclass
class LightGBMPredictor:
    model_string: str
    n_groups: int
    rounds: int
    model: str = "lgbm"
    _booster: object = field(default=None, repr=False, compare=False)

    def predict(self, weights) -> np.ndarray:
        if self._booster is None:
            import lightgbm as lgb

            self._booster = lgb.Booster(model_str=self.model_string)
        return self._booster.predict(_as_weights(weights, self.n_groups), num_threads=1)

    def to_json(self) -> dict:
        return {"model": self.model, "n_groups": self.n_groups, "rounds": self.rounds,
                "model_string": self.model_string}


@dataclass
class MixingLawPredictor:
    """L(r) = c + k exp(t . r), with sum(t) = 0: weights sum to 1, so shifting every t_j by a constant only
    rescales k; t is reported centred, which makes k the loss above c at the uniform mixture."""

    c: float
    k: float
    t: list[float]
    model: str = "mixing-law"

    @property
    def n_groups(self) -> int:
        return len(self.t)

    def predict(self, weights) -> np.ndarray:
        return _mixing_law(np.array([self.c, self.k, *self.t]), _as_weights(weights, self.n_groups))

    def to_json(self) -> dict:
        return {"model": self.model, "c": self.c, "k": self.k, "t": list(self.t)}


@dataclass
class RidgePredictor:
    """log L = intercept + coef . r."""

    intercept: float
    coef: list[float]
    alpha: float
    model: str = "ridge"

    @property
    def n_groups(self) -> int:
        return len(self.coef)

    def predict(self, weights) -> np.ndarray:
        return np.exp(self.intercept + _as_weights(weights, self.n_groups) @ np.asarray(self.coef))

    def to_json(self) -> dict:
        return {"model": self.model, "intercept": self.intercept, "coef": list(self.coef), "alpha": self.alpha}


Predictor = LightGBMPredictor | MixingLawPredictor | RidgePredictor


def from_json(d: dict) -> Predictor:
    """The predictor that `to_json` wrote."""
    kind = d.get("model")
    try:
        if kind == "lgbm":
            return LightGBMPredictor(model_string=d["model_string"], n_groups=int(d["n_groups"]),
                                     rounds=int(d["rounds"]))
        if kind == "mixing-law":
            return MixingLawPredictor(c=float(d["c"]), k=float(d["k"]), t=[float(v) for v in d["t"]])
        if kind == "ridge":
            return RidgePredictor(intercept=float(d["intercept"]), coef=[float(v) for v in d["coef"]],
                                  alpha=float(d["alpha"]))
    except KeyError as err:
        raise UserError(f"saved {kind} predictor lacks the key {err.args[0]!r}") from None
    raise UserError(f"unknown predictor model {kind!r}; expected one of {', '.join(MODELS)}")


def fit_predictor(model: str, weights, targets, *, seed: int = 0) -> Predictor:
    """Fit `model` (one of MODELS) to mixtures `weights` (n, g) and their losses `targets` (n,)."""
    if model not in MODELS:
        raise UserError(f"unknown model {model!r}; expected one of {', '.join(MODELS)}")
    weights = _as_weights(weights)
    targets = np.asarray(targets, dtype=float).ravel()
    if len(targets) != len(weights):
        raise UserError(f"{len(weights)} mixtures but {len(targets)} targets")
    if len(targets) < 3:
        raise UserError(f"{len(targets)} mixtures are too few to fit a predictor (need at least 3)")
    if not np.isfinite(targets).all():
        raise UserError("targets contain NaN or infinity")
    if model != "lgbm" and (targets <= 0).any():
        raise UserError(f"the {model} predictor models log loss: every target must be positive")
    from threadpoolctl import threadpool_limits

    # one BLAS thread: these are small matrices (a few hundred mixtures by tens of groups), where OpenBLAS's
    # threads cost more than they save (the mixing law fitted 18x slower on a busy 2-core machine,
    # bench/RESULTS.md) and contend with the workflow's parallel jobs
    with threadpool_limits(1):
        return {"lgbm": _fit_lgbm, "mixing-law": _fit_mixing_law, "ridge": _fit_ridge}[model](weights, targets,
                                                                                                seed)


def _fit_lgbm(weights: np.ndarray, targets: np.ndarray, seed: int) -> LightGBMPredictor:
    import lightgbm as lgb

    n = len(targets)
    params = {**_LGBM_PARAMS, "seed": seed, "min_data_in_leaf": int(np.clip(n // 8, 1, 20))}
    rounds = LGBM_MAX_ROUNDS
    if n >= LGBM_MIN_ROWS_TO_STOP_EARLY:
        order = np.random.default_rng(seed).permutation(n)
        held, kept = order[: n // 8], order[n // 8:]
        train = lgb.Dataset(weights[kept], targets[kept], params=params)
        stopper = lgb.train(params, train, num_boost_round=LGBM_MAX_ROUNDS,
                            valid_sets=[lgb.Dataset(weights[held], targets[held], reference=train)],
                            callbacks=[lgb.early_stopping(LGBM_EARLY_STOPPING, verbose=False)])
        rounds = max(1, stopper.best_iteration)
    booster = lgb.train(params, lgb.Dataset(weights, targets, params=params), num_boost_round=rounds)
    return LightGBMPredictor(model_string=booster.model_to_string(), n_groups=weights.shape[1], rounds=rounds,
                             _booster=booster)


def _mixing_law(theta: np.ndarray, weights: np.ndarray) -> np.ndarray:
    c, k, t = theta[0], theta[1], theta[2:]
    return c + k * np.exp(weights @ t)


def _fit_mixing_law(weights: np.ndarray, targets: np.ndarray, seed: int) -> MixingLawPredictor:
    """Huber fit of the law on log residuals, best of several starts.

    Parameters: c, k (the loss above its floor c at the uniform mixture; positive at every start) and the
    first g-1 exponents; the last is minus their sum (the centring that makes the form identifiable).
    Starts: for each trial floor c0 below the lowest loss, log(L - c0) is linear in the weights, so least
    squares gives k and t at once; seeded random perturbations of the best of those add the rest.
    """
    from scipy.optimize import least_squares

    # t . r with t_g = -(t_1 + ... + t_{g-1}) is linear in the free exponents through these differences
    differences = weights[:, :-1] - weights[:, -1:]
    log_targets = np.log(targets)
    spread = max(float(np.ptp(targets)), 1e-3 * float(targets.max()))

    prior = np.column_stack([np.zeros((weights.shape[1] - 1, 2)),
                             MIXING_LAW_EXPONENT_PRIOR * np.eye(weights.shape[1] - 1)])

    def residuals(free: np.ndarray) -> np.ndarray:
        misfit = np.log(np.maximum(free[0] + free[1] * np.exp(differences @ free[2:]), 1e-12)) - log_targets
        return np.concatenate([misfit, prior @ free])

    def jacobian(free: np.ndarray) -> np.ndarray:
        growth = np.exp(differences @ free[2:])
        predicted = np.maximum(free[0] + free[1] * growth, 1e-12)
        misfit = np.column_stack([np.ones_like(growth), growth, free[1] * growth[:, None] * differences]) \
            / predicted[:, None]
        return np.vstack([misfit, prior])

    def fit(start: np.ndarray):
        return least_squares(residuals, start, jac=jacobian, loss="huber", f_scale=MIXING_LAW_HUBER_DELTA)

    design = np.column_stack([np.ones(len(targets)), differences])
    best = None
    for floor in targets.min() - spread * np.array([0.02, 0.1, 0.5, 2.0, 10.0]):
        coef = np.linalg.lstsq(design, np.log(targets - floor), rcond=None)[0]
        candidate = fit(np.concatenate([[floor, np.exp(coef[0])], coef[1:]]))
        if best is None or candidate.cost < best.cost:
            best = candidate
    rng = np.random.default_rng(seed)
    scale = np.concatenate([[0.1 * spread, 0.3 * abs(best.x[1])], np.full(weights.shape[1] - 1, 0.5)])
    for _ in range(MIXING_LAW_RANDOM_STARTS):
        candidate = fit(best.x + rng.normal(0.0, 1.0, best.x.shape) * scale)
        if candidate.cost < best.cost:
            best = candidate
    theta = np.concatenate([best.x, [-best.x[2:].sum()]])
    return MixingLawPredictor(c=float(theta[0]), k=float(theta[1]), t=[float(v) for v in theta[2:]])


def _fit_ridge(weights: np.ndarray, targets: np.ndarray, seed: int) -> RidgePredictor:
    from sklearn.linear_model import RidgeCV

    fit = RidgeCV(alphas=RIDGE_ALPHAS).fit(weights, np.log(targets))  # leave-one-out; no randomness
    return RidgePredictor(intercept=float(fit.intercept_), coef=[float(v) for v in fit.coef_],
                          alpha=float(fit.alpha_))


def score(y_true, y_pred) -> dict:
    """Spearman and Pearson correlation and mean absolute error of predictions; a correlation is NaN when
    either side is constant."""
    from scipy.stats import pearsonr, spearmanr

    y_true, y_pred = np.asarray(y_true, dtype=float).ravel(), np.asarray(y_pred, dtype=float).ravel()
    if len(y_true) != len(y_pred):
        raise UserError(f"{len(y_true)} observed values but {len(y_pred)} predictions")
    constant = np.ptp(y_true) == 0 or np.ptp(y_pred) == 0 or len(y_true) < 2
    return {"spearman": float("nan") if constant else float(spearmanr(y_true, y_pred)[0]),
            "pearson": float("nan") if constant else float(pearsonr(y_true, y_pred)[0]),
            "mae": float(np.mean(np.abs(y_true - y_pred)))}


def cross_validate(model: str, weights, targets, *, folds: int = 5, seed: int = 0) -> dict:
    """`score` of out-of-fold predictions: each mixture predicted by a fit on the other folds (seeded split)."""
    weights = _as_weights(weights)
    targets = np.asarray(targets, dtype=float).ravel()
    if not 2 <= folds <= len(targets):
        raise UserError(f"{folds} folds need between 2 and {len(targets)} (the number of mixtures)")
    smallest_fit = len(targets) - -(-len(targets) // folds)
    if smallest_fit < 3:
        raise UserError(f"{folds}-fold cross-validation of {len(targets)} mixtures fits on {smallest_fit}; "
                        f"need at least 3")
    fold_of = np.empty(len(targets), dtype=int)
    fold_of[np.random.default_rng(seed).permutation(len(targets))] = np.arange(len(targets)) % folds
    predicted = np.empty(len(targets))
    for fold in range(folds):
        held = fold_of == fold
        predictor = fit_predictor(model, weights[~held], targets[~held], seed=seed)
        predicted[held] = predictor.predict(weights[held])
    return {**score(targets, predicted), "folds": folds}
