"""Decision accuracy (DataDecide, Magnusson et al. 2025): do small-scale mixture decisions hold at large scale?

Given per-document losses of m mixtures at two scales, a decision is the order of a pair of mixtures by mean
loss. The decision accuracy is the share of the m(m-1)/2 pairs ordered the same way at both scales (a pair
tied at either scale counts one half). Its interval resamples the evaluation documents, the same documents
for both scales in each resample, since the two scales are scored on one eval set, and, where each mixture was
trained with several seeds, the seeds too: a decision that one seed's luck made is not a decision.
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
    bootstrap interval (lo, hi). `small`, `large`: (m mixtures, d documents) losses, or (m, s seeds, d) where
    each mixture was trained with s seeds: the point uses every seed's mean, and each resample draws the seeds
    (with replacement, per mixture and scale) as well as the documents.

    With `chosen` (a row index: the mixture the search picked), also whether it has the lowest mean loss at
    the large scale (`chosen_wins`) and in what share of the resamples (`chosen_wins_share`)."""
    small, large = np.asarray(small, dtype=float), np.asarray(large, dtype=float)
    if small.ndim == 2:
        small, large = small[:, None, :], large[:, None, :] if large.ndim == 2 else large
    if small.ndim != 3 or large.ndim != 3 or small.shape[0] != large.shape[0] or small.shape[2] != large.shape[2]:
        raise UserError(f"small and large losses must be (mixtures, documents) or (mixtures, seeds, documents) "
                        f"arrays of one shape but for the seeds; got {small.shape} and {large.shape}")
    if small.shape[0] < 2:
        raise UserError(f"decision accuracy needs at least 2 mixtures, got {small.shape[0]}")
    if not (np.isfinite(small).all() and np.isfinite(large).all()):
        raise UserError("per-document losses contain NaN or infinity")
    if chosen is not None and not 0 <= chosen < small.shape[0]:
        raise UserError(f"chosen mixture {chosen} is not one of the {small.shape[0]} rows")
    n_docs = small.shape[2]
    accuracy = float(pair_agreement(small.mean(axis=(1, 2)), large.mean(axis=(1, 2))))
    result = {"accuracy": accuracy, "lo": accuracy, "hi": accuracy, "seeds": [small.shape[1], large.shape[1]],
              "pairs": small.shape[0] * (small.shape[0] - 1) // 2, "n_boot": n_boot}
    if chosen is not None:
        result["chosen_wins"] = bool(_wins(large.mean(axis=(1, 2)), chosen))
        result["chosen_wins_share"] = float(result["chosen_wins"])  # without resamples, the one answer
    if n_boot > 0:
        counts = resample_counts(n_docs, n_boot, seed).astype(float) / n_docs  # (n_boot, d) document shares
        rng = np.random.default_rng(seed + 1)
        small_means, large_means = (_seed_resampled(losses, counts, rng) for losses in (small, large))
        resampled = pair_agreement(small_means, large_means)
        result["lo"], result["hi"] = (float(v) for v in np.percentile(resampled, [2.5, 97.5]))
        if chosen is not None:
            result["chosen_wins_share"] = float(_wins(large_means, chosen).mean())
    return result


def _seed_resampled(losses: np.ndarray, counts: np.ndarray, rng) -> np.ndarray:
    """(n_boot, m) mean losses: per resample, the documents' shares `counts` (n_boot, d) and, per mixture, its
    seeds drawn with replacement (one seed: always itself)."""
    m, seeds, _ = losses.shape
    per_seed = np.einsum("bd,msd->bms", counts, losses)  # (n_boot, m, s) each seed's resampled mean
    drawn = rng.integers(0, seeds, size=(len(counts), m, seeds))
    return np.take_along_axis(per_seed, drawn, axis=2).mean(axis=2)


def divergence_warnings(chosen: dict, reference: dict, reference_name: str = "natural") -> list[str]:
    """Why a target win may not hold: the chosen mixture beats `reference` on the search's target but loses on
    the natural validation mixture, or on most groups. `chosen`, `reference`: a verification row's `target`,
    `natural` (loss on the natural validation mixture, None where unknown) and `groups` (group -> loss)."""
    if chosen["target"] is None or reference["target"] is None or chosen["target"] >= reference["target"]:
        return []
    won = f"wins its target ({chosen['target']:.4f} against {reference['target']:.4f} for the {reference_name} mixture)"
    warnings = []
    if chosen.get("natural") is not None and reference.get("natural") is not None \
            and chosen["natural"] > reference["natural"]:
        warnings.append(f"the chosen mixture {won} but loses on the natural validation mixture "
                        f"({chosen['natural']:.4f} against {reference['natural']:.4f})")
    groups = sorted(set(chosen.get("groups") or {}) & set(reference.get("groups") or {}))
    worse = [g for g in groups if chosen["groups"][g] > reference["groups"][g]]
    if groups and len(worse) > len(groups) / 2:
        gains = {g: reference["groups"][g] - chosen["groups"][g] for g in groups}
        best = max(gains, key=gains.get)
        warnings.append(f"the chosen mixture {won} but is worse on {len(worse)} of {len(groups)} groups "
                        f"({', '.join(worse)}); its largest gain is on {best} ({gains[best]:+.3f} nats)")
    return warnings


def _wins(means: np.ndarray, chosen: int) -> np.ndarray:
    """Whether row `chosen` has the strictly lowest mean (per resample, over the last axis)."""
    others = np.delete(means, chosen, axis=-1)
    return means[..., chosen] < others.min(axis=-1)
