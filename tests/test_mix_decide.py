"""Decision accuracy across scales on constructed losses whose answer is known."""

import numpy as np
import pytest

from isoflop.errors import UserError
from isoflop.mix.decide import decision_accuracy


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
    assert result == {"accuracy": 1.0, "lo": 1.0, "hi": 1.0, "pairs": 15, "n_boot": 500}


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
