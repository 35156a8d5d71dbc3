"""The sum-of-power-laws form behind every loss law isoflop fits.

    L(x_1..x_V) = E + sum_j A_j x_j^-alpha_j

Chinchilla's `L(N, D) = E + A/N^alpha + B/D^beta` is the case V = 2 with an offset; a loss curve
`L(x) = E + A x^-alpha` is V = 1, and a pure power law `A x^-alpha` is V = 1 without the offset.
Following Hoffmann et al. (2022) and Besiroglu et al. (2024) the fit works in log space:

    log L = LSE(a_1 - alpha_1 log x_1, ..., a_V - alpha_V log x_V, e),  A_j = exp(a_j), E = exp(e)

with a Huber loss on the log residuals, summed (never averaged: see `huber_objective`). The
log-sum-exp keeps every coefficient positive without bounds and makes the terms comparable in size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COEFFICIENT_NAMES = ("A", "B")
EXPONENT_NAMES = ("alpha", "beta")


@dataclass(frozen=True)
class PowerSumLaw:
    """Which variables the law has (`variables`) and whether it has an irreducible loss `E`.

    The parameter vector `theta` holds, in order, the log coefficients `a_j` of each variable's
    term, then `e = log E` when `offset`, then the exponents `alpha_j`.
    """

    variables: tuple[str, ...]
    offset: bool = True

    def __post_init__(self):
        if not 1 <= len(self.variables) <= len(COEFFICIENT_NAMES):
            raise ValueError(f"a power-sum law has 1 or 2 variables, not {self.variables}")

    @property
    def n_terms(self) -> int:
        return len(self.variables) + int(self.offset)

    @property
    def n_params(self) -> int:
        return self.n_terms + len(self.variables)

    @property
    def names(self) -> tuple[str, ...]:
        """Public parameter names, in the order of `to_params`: E first, then A, B, then exponents."""
        v = len(self.variables)
        return (("E",) if self.offset else ()) + COEFFICIENT_NAMES[:v] + EXPONENT_NAMES[:v]

    def to_params(self, theta: np.ndarray) -> np.ndarray:
        """Map log-space `theta` (..., P) to the public parameters (..., P) in the order of `names`."""
        theta = np.asarray(theta, dtype=float)
        v = len(self.variables)
        coefs = np.exp(theta[..., : self.n_terms])
        offset = coefs[..., v:] if self.offset else coefs[..., :0]
        return np.concatenate([offset, coefs[..., :v], theta[..., self.n_terms :]], axis=-1)

    def to_theta(self, params: np.ndarray) -> np.ndarray:
        """Inverse of `to_params`."""
        params = np.asarray(params, dtype=float)
        v = len(self.variables)
        k = int(self.offset)
        with np.errstate(divide="ignore"):  # a coefficient that underflowed to 0 is log 0 = -inf: a vanished term
            log_offset = np.log(params[..., :k])
            log_coefs = np.log(params[..., k : k + v])
        return np.concatenate([log_coefs, log_offset, params[..., k + v :]], axis=-1)

    def log_terms(self, theta: np.ndarray, log_x: np.ndarray) -> list[np.ndarray]:
        """Each term's log as one (K, n) array, for `theta` (K, P) and `log_x` (n, V).

        A list rather than one (K, n, T) array: reductions over a trailing axis of length 2 or 3
        are several times slower in numpy than elementwise maximum and sum across a few arrays.
        """
        v = len(self.variables)
        terms = [
            theta[:, j, None] - theta[:, self.n_terms + j, None] * log_x[None, :, j]
            for j in range(v)
        ]
        if self.offset:
            terms.append(np.broadcast_to(theta[:, v, None], terms[0].shape))
        return terms

    def log_predict(self, theta: np.ndarray, log_x: np.ndarray) -> np.ndarray:
        """log L for `theta` (K, P) at `log_x` (n, V): shape (K, n)."""
        log_total, _ = _log_sum_exp(self.log_terms(np.atleast_2d(theta), log_x))
        return log_total

    def predict(self, params: np.ndarray, x: np.ndarray) -> np.ndarray:
        """L at `x` (n, V) for public `params` (K, P): shape (K, n)."""
        theta = self.to_theta(np.atleast_2d(params))
        return np.exp(self.log_predict(theta, np.log(np.atleast_2d(x))))

    def huber_objective(
        self,
        theta: np.ndarray,
        log_x: np.ndarray,
        log_y: np.ndarray,
        weights: np.ndarray | float,
        delta: float,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Summed Huber loss of the log residuals and its gradient, for K parameter vectors at once.

        `theta` (K, P); `log_x` (n, V); `log_y` (n,); `weights` (K, n) counts per point (1.0
        for a plain fit, bootstrap multiplicities for a refit). Returns f (K,) and grad (K, P).

        The loss is a sum, not a mean: dividing by n rescales the objective, and with it every
        absolute tolerance an optimiser uses, which is how a default L-BFGS-B run stops early near
        Hoffmann et al.'s published values instead of at the optimum (Besiroglu et al. 2024).
        """
        v = len(self.variables)
        log_total, shares = _log_sum_exp(self.log_terms(theta, log_x))
        residual = log_total - log_y
        size = np.abs(residual)
        loss = np.where(size <= delta, 0.5 * residual**2, delta * (size - 0.5 * delta))
        slope = weights * np.clip(residual, -delta, delta)  # d loss / d log_total, weighted
        grads = [(slope * share).sum(axis=1) for share in shares]
        grads += [-(slope * shares[j] * log_x[:, j]).sum(axis=1) for j in range(v)]
        return (weights * loss).sum(axis=1), np.stack(grads, axis=1)


def _log_sum_exp(terms: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Elementwise log(sum_j exp(terms_j)) and each term's share exp(terms_j) / sum."""
    top = terms[0]
    for term in terms[1:]:
        top = np.maximum(top, term)
    scaled = [np.exp(term - top) for term in terms]
    total = scaled[0]
    for part in scaled[1:]:
        total = total + part
    inverse = 1.0 / total
    return top + np.log(total), [part * inverse for part in scaled]


CHINCHILLA = PowerSumLaw(("N", "D"), offset=True)


def compute_optimal(params: np.ndarray) -> dict[str, np.ndarray]:
    """Compute-optimal allocation of a Chinchilla law under C = 6 N D (Hoffmann et al. 2022, eq. 4).

    `params` (..., 5) as (E, A, B, alpha, beta). Returns `a`, `b` and `G` with
    N*(C) = G (C/6)^a and D*(C) = G^-1 (C/6)^b, a = beta/(alpha+beta), b = alpha/(alpha+beta).
    """
    params = np.asarray(params, dtype=float)
    _, coef_n, coef_d, alpha, beta = np.moveaxis(params, -1, 0)
    total = alpha + beta
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        scale = ((alpha * coef_n) / (beta * coef_d)) ** (1.0 / total)
    return {"a": beta / total, "b": alpha / total, "G": scale}


def optimal_allocation(params: np.ndarray, compute: float) -> dict[str, np.ndarray]:
    """N*, D* and the loss they reach at `compute` FLOPs, for Chinchilla `params` (..., 5)."""
    params = np.asarray(params, dtype=float)
    allocation = compute_optimal(params)
    with np.errstate(over="ignore", invalid="ignore"):
        n_opt = allocation["G"] * (compute / 6.0) ** allocation["a"]
        d_opt = (compute / 6.0) ** allocation["b"] / allocation["G"]
        E, A, B, alpha, beta = np.moveaxis(params, -1, 0)
        loss = E + A / n_opt**alpha + B / d_opt**beta
    return {"N_opt": n_opt, "D_opt": d_opt, "loss": loss}
