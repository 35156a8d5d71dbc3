"""Synthetic Markov documents: determinism and the exact entropy rate against empirical estimates."""

import math
from collections import Counter

import numpy as np
import pytest

from isoflop.corpus.synthetic import (
    ALPHABET,
    markov_documents,
    markov_entropy_rate,
    markov_transitions,
    stationary_distribution,
)
from isoflop.errors import UserError


def test_documents_are_seeded_and_use_the_alphabet():
    docs = list(markov_documents(300, 50, alphabet_size=6, order=2, seed=1))
    assert len(docs) == 300 and all(len(doc) == 50 for doc in docs)
    assert set("".join(docs)) == set(ALPHABET[:6])
    assert docs == list(markov_documents(300, 50, alphabet_size=6, order=2, seed=1))
    assert docs != list(markov_documents(300, 50, alphabet_size=6, order=2, seed=2))


def test_stationary_distribution_is_stationary():
    transitions = markov_transitions(5, 2, seed=3)
    pi = stationary_distribution(transitions)
    assert pi.sum() == pytest.approx(1.0)
    # pi(b, c) = sum_a pi(a, b) P(c | a, b) for contexts (a, b) -> (b, c)
    joint = pi.reshape(5, 5)[:, :, None] * transitions.reshape(5, 5, 5)
    assert np.allclose(joint.sum(axis=0).ravel(), pi, atol=1e-14)


@pytest.mark.parametrize("alphabet_size, order", [(4, 1), (4, 2), (8, 2)])
def test_entropy_rate_matches_empirical_estimates(alphabet_size, order):
    seed = 11
    rate = markov_entropy_rate(alphabet_size, order, seed)
    assert 0.05 < rate < math.log(alphabet_size)
    text = "".join(markov_documents(40, 10_000, alphabet_size, order, seed))
    docs = [text[i : i + 10_000] for i in range(0, len(text), 10_000)]
    # plug-in conditional entropy from counts of (context, next), inside documents only
    pairs = Counter((doc[i - order : i], doc[i]) for doc in docs for i in range(order, len(doc)))
    contexts = Counter()
    for (context, _), n in pairs.items():
        contexts[context] += n
    total = sum(pairs.values())
    plug_in = -sum(n / total * math.log(n / contexts[c]) for (c, _), n in pairs.items())
    assert plug_in == pytest.approx(rate, abs=0.01)
    # mean negative log-likelihood of the text under the true chain
    transitions = markov_transitions(alphabet_size, order, seed)
    index = {ch: k for k, ch in enumerate(ALPHABET[:alphabet_size])}
    def context_index(context):
        return sum(index[ch] * alphabet_size ** (order - 1 - j) for j, ch in enumerate(context))

    nll = sum(-n * math.log(transitions[context_index(c), index[x]]) for (c, x), n in pairs.items()) / total
    assert nll == pytest.approx(rate, abs=0.01)


def test_bad_settings_name_the_setting():
    with pytest.raises(UserError, match="alphabet_size"):
        markov_entropy_rate(1, 1, seed=0)
    with pytest.raises(UserError, match="branching"):
        markov_entropy_rate(4, 1, seed=0, branching=5)
