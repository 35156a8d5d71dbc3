"""Parameter recovery: do the 95% bootstrap intervals cover known true laws about 95% of the time?

Random true laws around Chinchilla's, an IsoFLOP-style design (5 budgets x 7 sizes) and 1%
log-normal noise, about what seeds do to the loss of small runs. The fast test keeps the default
suite quick; the slow one runs enough laws to pin the rate within 90-99%.
"""

import numpy as np
import pytest

from isoflop.fit import fit_chinchilla, fit_curve
from test_fit_chinchilla import NAMES, synthetic_study

NOISE = 0.01


def random_law(rng):
    return (rng.uniform(1.5, 2.5), np.exp(rng.uniform(np.log(100), np.log(1000))),
            np.exp(rng.uniform(np.log(300), np.log(3000))), rng.uniform(0.25, 0.45), rng.uniform(0.25, 0.45))


def chinchilla_coverage(n_laws, resamples, seed):
    """Per (law, parameter): whether the interval holds the truth; and the intervals' widths."""
    rng = np.random.default_rng(seed)
    hits, widths = [], []
    for index in range(n_laws):
        true = random_law(rng)
        fit = fit_chinchilla(*synthetic_study(true, noise=NOISE, seed=seed + index),
                             bootstrap=resamples, seed=index)
        ci = np.array([fit["ci95"][name] for name in NAMES])
        hits.append((ci[:, 0] <= true) & (np.asarray(true) <= ci[:, 1]))
        widths.append((ci[:, 1] - ci[:, 0]) / np.asarray(true))
    return np.array(hits), np.array(widths)


def test_chinchilla_intervals_cover_the_truth():
    hits, widths = chinchilla_coverage(n_laws=12, resamples=100, seed=100)
    assert 0.85 <= hits.mean() <= 1.0
    # and they say something: with 35 points the exponents are pinned to about +-20%
    assert np.median(widths[:, 3:]) < 0.5


def test_loss_curve_intervals_cover_the_truth():
    rng = np.random.default_rng(3)
    hits = []
    for index in range(12):
        e, a, alpha = rng.uniform(1.5, 3.0), np.exp(rng.uniform(np.log(20), np.log(200))), rng.uniform(0.1, 0.4)
        x = np.geomspace(1e6, 1e9, 20)
        y = (e + a * x**-alpha) * np.exp(rng.normal(0, NOISE, len(x)))
        fit = fit_curve(x, y, variable="N", bootstrap=100, seed=index)
        ci = np.array([fit["ci95"][name] for name in ("E", "A", "alpha")])
        hits.append((ci[:, 0] <= (e, a, alpha)) & (np.array([e, a, alpha]) <= ci[:, 1]))
    assert 0.85 <= np.mean(hits) <= 1.0


@pytest.mark.slow
def test_chinchilla_coverage_is_within_90_to_99_percent():
    hits, _ = chinchilla_coverage(n_laws=150, resamples=200, seed=7)
    assert 0.90 <= hits.mean() <= 0.99, hits.mean(axis=0)
