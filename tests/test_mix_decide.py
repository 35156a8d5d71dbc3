"""Decision accuracy across scales on constructed losses whose answer is known."""

import numpy as np
import pytest

from isoflop.errors import UserError
from isoflop.mix.decide import decision_accuracy, divergence_warnings


def per_document_losses(means, n_docs=400, noise=0.5, seed=0):
    """Per-document losses whose mean per mixture is exactly `means`."""
    rng = np.random.default_rng(seed)
    scatter = noise * rng.normal(size=(len(means), n_docs))
    return np.asarray(means)[:, None] + scatter - scatter.mean(axis=1, keepdims=True)


def test_identical_orders_score_one_with_a_narrow_interval():
    # neighbours 0.02 apart, 0.6 standard errors: resampling documents independently per scale would flip
    # pairs; resampling the same documents for both keeps every resample's orders identical
    small = per_document_losses(np.linspace(3.0, 3.1, 6))
    large = small - 0.7
    result = decision_accuracy(small, large, n_boot=500, seed=0)
    assert result == {"accuracy": 1.0, "lo": 1.0, "hi": 1.0, "seeds": [1, 1], "pairs": 15, "n_boot": 500}


def test_reversed_orders_score_zero():
    small = per_document_losses(np.linspace(3.0, 4.0, 5))
    result = decision_accuracy(small, -small, n_boot=200)
    assert (result["accuracy"], result["lo"], result["hi"], result["pairs"]) == (0.0, 0.0, 0.0, 10)


@pytest.mark.parametrize(("gap", "interval"), [(0.2, (5 / 6, 5 / 6)), (0.005, (5 / 6, 1.0))])
def test_a_known_share_of_pairs_and_an_interval_from_resampled_documents(gap, interval):
    # 4 mixtures; the large scale swaps the two best and keeps the rest far apart: 5 of 6 pairs agree. A gap
    # of 14 standard errors never flips in a resample; one of 0.35 often does, at either scale, and the
    # swapped pair then agrees
    small = per_document_losses([3.0, 3.0 + gap, 3.5, 4.0], noise=0.2, seed=1)
    large = per_document_losses([3.0 + gap, 3.0, 3.5, 4.0], noise=0.2, seed=2)
    result = decision_accuracy(small, large, n_boot=1000, seed=0)
    assert result["pairs"] == 6
    assert result["accuracy"] == pytest.approx(5 / 6)
    assert (result["lo"], result["hi"]) == pytest.approx(interval)
    assert decision_accuracy(small, large, n_boot=1000, seed=0) == result


def test_whether_the_chosen_mixture_still_wins_at_scale():
    # mixture 0 is best at both scales by a clear margin; mixture 1 is best at small scale by a hair only
    small = per_document_losses([3.0, 2.99, 3.5], noise=0.2, seed=3)
    large = per_document_losses([2.5, 2.6, 3.0], noise=0.2, seed=4)
    clear = decision_accuracy(small, large, n_boot=500, chosen=0)
    assert clear["chosen_wins"] is True and clear["chosen_wins_share"] == 1.0
    lost = decision_accuracy(small, large, n_boot=500, chosen=1)
    assert lost["chosen_wins"] is False and lost["chosen_wins_share"] == 0.0
    assert decision_accuracy(small, large, n_boot=0, chosen=0)["chosen_wins_share"] == 1.0
    with pytest.raises(UserError, match="chosen mixture 3 is not one of the 3 rows"):
        decision_accuracy(small, large, chosen=3)


def test_ties_count_half_and_bad_shapes_are_user_errors():
    small = np.array([[1.0, 1.0], [1.0, 1.0]])
    assert decision_accuracy(small, small + np.array([[0.0], [1.0]]), n_boot=0)["accuracy"] == 0.5
    with pytest.raises(UserError, match="one shape"):
        decision_accuracy(np.ones((3, 4)), np.ones((3, 5)))
    with pytest.raises(UserError, match="NaN"):
        decision_accuracy(np.array([[1.0, np.nan], [2.0, 2.0]]), np.ones((2, 2)))


def test_seed_noise_widens_the_decision_interval_and_the_chosen_mixture_s_share_of_wins():
    # two mixtures 0.05 apart on every document, at both scales, trained with 3 seeds each whose means scatter by
    # 0.1: one seed per mixture orders them by luck, so the interval over resampled seeds spans both orders
    rng = np.random.default_rng(5)
    base = per_document_losses([3.0, 3.05], noise=0.2, seed=6)
    shifts = {scale: rng.normal(0, 0.1, size=(2, 3, 1)) for scale in ("small", "large")}
    shifts["small"] -= shifts["small"].mean(axis=1, keepdims=True)  # the seeds' means keep the order at
    shifts["large"] -= shifts["large"].mean(axis=1, keepdims=True)  # both scales: the point estimate agrees
    small, large = (base[:, None, :] + shifts[scale] for scale in ("small", "large"))
    seeded = decision_accuracy(small, large - 0.5, n_boot=500, seed=0, chosen=0)
    assert seeded["accuracy"] == 1.0 and seeded["seeds"] == [3, 3]
    assert seeded["lo"] == 0.0 and seeded["hi"] == 1.0
    assert 0.5 < seeded["chosen_wins_share"] < 0.95
    # the documents alone (the seeds' mean) say the order is certain
    alone = decision_accuracy(small.mean(axis=1), large.mean(axis=1) - 0.5, n_boot=500, seed=0, chosen=0)
    assert (alone["lo"], alone["hi"], alone["chosen_wins_share"]) == (1.0, 1.0, 1.0)


def test_a_target_win_that_loses_on_the_natural_mixture_and_most_groups_is_warned():
    # the case of the issue: one small cluster of generated tables gains a whole nat; four of six groups lose
    natural = {"target": 3.30, "natural": 3.227, "groups": {"c0": 3.1, "c1": 3.2, "c2": 3.3, "c3": 3.4, "c4": 2.36,
                                                           "c5": 3.5}}
    chosen = {"target": 3.21, "natural": 3.335, "groups": {"c0": 3.15, "c1": 3.25, "c2": 3.35, "c3": 3.45,
                                                          "c4": 1.39, "c5": 3.45}}
    first, second = divergence_warnings(chosen, natural)
    assert "wins its target (3.2100 against 3.3000" in first and "loses on the natural validation mixture" in first
    assert "(3.3350 against 3.2270)" in first
    assert "worse on 4 of 6 groups (c0, c1, c2, c3)" in second and "largest gain is on c4 (+0.970 nats)" in second
    # a win that holds everywhere, or a loss on the target, warns of nothing
    better = {**chosen, "natural": 3.2, "groups": {g: v - 0.2 for g, v in natural["groups"].items()}}
    assert divergence_warnings(better, natural) == []
    assert divergence_warnings({**chosen, "target": 3.4}, natural) == []
