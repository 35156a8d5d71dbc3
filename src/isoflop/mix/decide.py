"""Decision accuracy (DataDecide, Magnusson et al. 2025): do small-scale mixture decisions hold at large scale?

Given per-document losses of m mixtures at two scales, a decision is the order of a pair of mixtures by mean
loss. The decision accuracy is the share of the m(m-1)/2 pairs ordered the same way at both scales (a pair
tied at either scale counts one half). Its interval resamples the evaluation documents, the same documents
for both scales in each resample, since the two scales are scored on one eval set.
"""

from __future__ import annotations

import numpy as np

from isoflop.errors import UserError
from isoflop.fit.bootstrap import resample_counts


def pair_agreement(small_means: np.ndarray, large_means: np.ndarray) -> np.ndarray:
    """Decision accuracy of mean losses (..., m) at two scales, over the last axis's pairs."""
    i, j = np.triu_indices(small_means.shape[-1], k=1)
    agree = np.sign(small_means[..., i] - small_means[..., j]) * np.sign(large_means[..., i] - large_means[..., j])
    return np.where(agree > 0, 1.0, np.where(agree < 0, 0.0, 0.5)).mean(axis=-1)


def decision_accuracy(small, large, *, n_boot: int = 1000, seed: int = 0, chosen: int | None = None) -> dict:
    """Accuracy of the small scale's pairwise orders against the large scale's, with a 95% percentile
    bootstrap interval (lo, hi) over eval documents. `small`, `large`: (m mixtures, d documents) losses.

    With `chosen` (a row index: the mixture the search picked), also whether it has the lowest mean loss at
    the large scale (`chosen_wins`) and in what share of the resamples (`chosen_wins_share`)."""
    small, large = np.asarray(small, dtype=float), np.asarray(large, dtype=float)
    if small.ndim != 2 or small.shape != large.shape:
        raise UserError(f"small and large losses must be (mixtures, documents) arrays of one shape; got "
                        f"{small.shape} and {large.shape}")
    if small.shape[0] < 2:
        raise UserError(f"decision accuracy needs at least 2 mixtures, got {small.shape[0]}")
    if not (np.isfinite(small).all() and np.isfinite(large).all()):
        raise UserError("per-document losses contain NaN or infinity")
    if chosen is not None and not 0 <= chosen < small.shape[0]:
        raise UserError(f"chosen mixture {chosen} is not one of the {small.shape[0]} rows")
    n_docs = small.shape[1]
    accuracy = float(pair_agreement(small.mean(axis=1), large.mean(axis=1)))
    result = {"accuracy": accuracy, "lo": accuracy, "hi": accuracy,
              "pairs": small.shape[0] * (small.shape[0] - 1) // 2, "n_boot": n_boot}
    if chosen is not None:
        result["chosen_wins"] = bool(_wins(large.mean(axis=1), chosen))
        result["chosen_wins_share"] = float(result["chosen_wins"])  # without resamples, the one answer
    if n_boot > 0:
        counts = resample_counts(n_docs, n_boot, seed).astype(float) / n_docs  # (n_boot, d) document shares
        large_means = counts @ large.T
        resampled = pair_agreement(counts @ small.T, large_means)
        result["lo"], result["hi"] = (float(v) for v in np.percentile(resampled, [2.5, 97.5]))
        if chosen is not None:
            result["chosen_wins_share"] = float(_wins(large_means, chosen).mean())
    return result


def _wins(means: np.ndarray, chosen: int) -> np.ndarray:
    """Whether row `chosen` has the strictly lowest mean (per resample, over the last axis)."""
    others = np.delete(means, chosen, axis=-1)
    return means[..., chosen] < others.min(axis=-1)
