"""The proposer: RegMix's sampler around a prior, and constraints that hold and are reported when they bind."""

import numpy as np
import pytest

from isoflop.errors import UserError
from isoflop.mix.predictors import MixingLawPredictor
from isoflop.mix.propose import kl_divergence, propose, sample_mixtures

NATURAL = np.array([0.4, 0.3, 0.2, 0.1])
GROUPS = ["a", "b", "c", "d"]
# the loss falls steeply with group a's weight: unconstrained, the proposer puts nearly everything on a
FAVOURS_A = MixingLawPredictor(c=2.0, k=1.5, t=[-2.0, 0.5, 1.0, 0.5])
SEARCH = {"n_candidates": 20_000, "top_k": 50, "seed": 0, "groups": GROUPS}


def test_samples_are_mixtures_around_the_tempered_prior_and_reproducible():
    samples = sample_mixtures(NATURAL, 20_000, seed=3)
    assert samples.shape == (20_000, 4)
    assert (samples >= 0).all()
    np.testing.assert_allclose(samples.sum(axis=1), 1.0, atol=1e-12)
    prior = NATURAL ** 0.5 / (NATURAL ** 0.5).sum()  # RegMix's temperature 0.5; a Dirichlet's mean is its prior
    np.testing.assert_allclose(samples.mean(axis=0), prior, atol=0.01)
    np.testing.assert_array_equal(sample_mixtures(NATURAL, 20_000, seed=3), samples)
    assert not np.array_equal(sample_mixtures(NATURAL, 20_000, seed=4), samples)


def test_sparsity_drops_groups_and_absent_groups_are_never_sampled():
    plain = sample_mixtures(NATURAL, 5000, seed=0)
    sparse = sample_mixtures(NATURAL, 5000, seed=0, sparsity=0.5)
    assert (sparse == 0).mean() > (plain == 0).mean() + 0.3
    np.testing.assert_allclose(sparse.sum(axis=1), 1.0, atol=1e-12)
    absent = sample_mixtures([0.5, 0.0, 0.5], 2000, seed=1, sparsity=0.5)
    assert (absent[:, 1] == 0).all()


def test_unconstrained_the_proposal_follows_the_predictor_and_nothing_binds():
    result = propose(FAVOURS_A, NATURAL, **SEARCH)
    assert propose(FAVOURS_A, NATURAL, **SEARCH) == result  # a pure function of its inputs and seed
    assert result["weights"][0] > 0.95
    assert result["binding"] == [] and result["binding_groups"] == {}
    assert result["n_feasible"] == result["n_candidates"] == 20_000
    assert result["predicted"] == pytest.approx(FAVOURS_A.predict(np.array(result["weights"]))[0])


def test_max_epochs_holds_and_is_named_as_binding():
    # group a has 100 tokens; a 1000-token run repeating it at most twice may give it 20% of the mixture
    tokens = [100.0, 1000.0, 1000.0, 1000.0]
    result = propose(FAVOURS_A, NATURAL, max_epochs=2.0, tokens_per_group=tokens, total_tokens=1000.0,
                     bounds=[(0.0, 1.0), (0.0, 1.0), (0.0, 1.0), (0.0, 0.9)], **SEARCH)
    weights = np.array(result["weights"])
    assert (weights * 1000.0 / np.array(tokens) <= 2.0 + 1e-12).all()
    assert weights[0] > 0.15  # pushed against the limit, not far from it
    assert result["binding"] == ["max_epochs"]  # the loose bound on d is not reported
    assert result["binding_groups"] == {"max_epochs": ["a"]}


def test_bounds_hold_and_bind():
    result = propose(FAVOURS_A, NATURAL, bounds=[(0.0, 0.3), (0.1, 1.0), (0.0, 1.0), (0.0, 1.0)], **SEARCH)
    weights = np.array(result["weights"])
    assert weights[0] <= 0.3 + 1e-12 and weights[1] >= 0.1 - 1e-12
    assert result["binding"] == ["bounds"]
    assert "a" in result["binding_groups"]["bounds"]


def test_kl_limit_holds_and_binds():
    result = propose(FAVOURS_A, NATURAL, kl_max=0.05, **SEARCH)
    assert kl_divergence(np.array(result["weights"]), NATURAL)[0] <= 0.05
    assert result["binding"] == ["kl_max"]
    assert 0 < result["n_feasible"] < 20_000


def test_polish_improves_a_smooth_predictor_within_the_constraints():
    result = propose(FAVOURS_A, NATURAL, kl_max=0.05, polish=True, **SEARCH)
    polished = np.array(result["polished"]["weights"])
    assert result["polished"]["predicted"] < result["predicted"]
    assert kl_divergence(polished, NATURAL)[0] <= 0.05
    assert kl_divergence(polished, NATURAL)[0] == pytest.approx(0.05, abs=1e-6)  # the solver ends on the limit
    assert result["polished"]["binding"] == ["kl_max"]
    assert polished.sum() == pytest.approx(1.0) and (polished >= 0).all()
    capped = propose(FAVOURS_A, NATURAL, bounds=[(0.0, 0.3), (0.0, 1.0), (0.0, 1.0), (0.0, 1.0)], polish=True,
                     **SEARCH)
    assert capped["polished"]["weights"][0] == pytest.approx(0.3)
    assert capped["polished"]["binding"] == ["bounds"]


def test_impossible_constraints_are_one_line_errors():
    with pytest.raises(UserError, match="bounds admit no mixture"):
        propose(FAVOURS_A, NATURAL, bounds=[(0.5, 1.0), (0.6, 1.0), (0.0, 1.0), (0.0, 1.0)], **SEARCH)
    with pytest.raises(UserError, match="none of 20000 candidate mixtures satisfies bounds, kl_max"):
        propose(FAVOURS_A, NATURAL, bounds=[(0.0, 1.0), (0.0, 1.0), (0.0, 1.0), (0.9, 1.0)], kl_max=0.01, **SEARCH)
    with pytest.raises(UserError, match="max_epochs needs tokens_per_group and total_tokens"):
        propose(FAVOURS_A, NATURAL, max_epochs=4.0, **SEARCH)
