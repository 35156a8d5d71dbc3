import numpy as np
import pytest

from isoflop.curate.minhash import (MinHashParams, estimated_jaccard, exact_jaccard, optimal_bands_rows, s_curve,
                                    signatures)
from isoflop.curate.synthetic import edit_text

WORDS = [f"tok{i}" for i in range(400)]


def _random_text(rng, n_words):
    return " ".join(rng.choice(WORDS, size=n_words))


def test_s_curve_matches_formula():
    assert s_curve(0.5, 4, 2) == pytest.approx(1 - (1 - 0.25) ** 4)
    assert s_curve(0.0, 20, 5) == 0.0 and s_curve(1.0, 20, 5) == 1.0


def test_optimal_bands_rows_fits_and_puts_the_rise_at_the_threshold():
    for threshold in (0.5, 0.8, 0.9):
        bands, rows = optimal_bands_rows(threshold, 128, 0.5)
        assert bands * rows <= 128
        # the S-curve's steepest point, (1/b)^(1/r), sits near the threshold
        assert abs((1 / bands) ** (1 / rows) - threshold) < 0.1
    assert optimal_bands_rows(0.8, 128, 0.5) == (9, 13)


def test_params_reject_too_many_bands():
    with pytest.raises(ValueError, match="exceeds num_perm"):
        MinHashParams(num_perm=64, bands=10, rows=8)


def test_estimate_is_unbiased_and_as_precise_as_minhash():
    rng = np.random.default_rng(0)
    params = MinHashParams(num_perm=128, ngram=3)
    truth, estimate = [], []
    for _ in range(120):
        text = _random_text(rng, int(rng.integers(200, 800)))
        copy = edit_text(text, "insert", float(rng.uniform(0.02, 0.4)), rng)
        sigs, _ = signatures([text, copy], params)
        truth.append(exact_jaccard(text, copy, 3))
        estimate.append(estimated_jaccard(sigs[0], sigs[1]))
    truth, estimate = np.array(truth), np.array(estimate)
    assert abs((estimate - truth).mean()) < 0.01
    # binomial standard error of 128 independent permutations, with 25% slack
    assert np.sqrt(((estimate - truth) ** 2).mean()) < 1.25 * np.sqrt((truth * (1 - truth) / 128).mean())


def test_signature_depends_only_on_the_document():
    rng = np.random.default_rng(1)
    texts = [_random_text(rng, 50) for _ in range(5)]
    params = MinHashParams()
    together, _ = signatures(texts, params)
    alone = np.stack([signatures([t], params)[0][0] for t in reversed(texts)])[::-1]
    np.testing.assert_array_equal(together, alone)
    np.testing.assert_array_equal(together, signatures(texts, params, workers=2)[0])


def test_words_are_case_and_punctuation_insensitive_and_short_docs_get_one_shingle():
    params = MinHashParams(ngram=5)
    sigs, counts = signatures(["Hello, World!", "hello world", "", "...", "a b c d e f"], params)
    np.testing.assert_array_equal(sigs[0], sigs[1])
    assert counts.tolist() == [1, 1, 0, 0, 2]
    assert estimated_jaccard(sigs[0], sigs[4]) == 0.0
