"""Fit time of each mixture predictor on RegMix's 1M-proxy data, against the ridge baseline in the same run.

    .venv/bin/python bench/bench_mix.py [--repeats 3] [--candidates 100000]

Fits each predictor on the 512 train mixtures (target: Pile-CC validation loss), scores it on the 256 test
mixtures, and times the fit (median of --repeats, libraries imported beforehand) and one `propose` over
--candidates sampled mixtures. Ratios are predictor time / ridge time (above 1: slower than the baseline).
Last, the mixing-law fit as `fit_predictor` runs it (one BLAS thread) against the same fit with BLAS on every
core, the library's default.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from isoflop.mix.cli import read_proxies
from threadpoolctl import threadpool_limits

from isoflop.mix import predictors
from isoflop.mix.predictors import MODELS, fit_predictor, score
from isoflop.mix.propose import propose

REGMIX = Path(__file__).resolve().parents[1] / ".." / "shared" / "reference" / "regmix"
TARGET = "metric/the_pile_pile_cc_val_loss"


def timed(func):
    started = time.perf_counter()
    value = func()
    return value, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--candidates", type=int, default=100_000)
    args = parser.parse_args()
    groups, weights, targets = read_proxies(REGMIX / "train_mixture_1m.csv", REGMIX / "train_pile_loss_1m.csv",
                                            "index", TARGET)
    test_groups, test_weights, test_targets = read_proxies(REGMIX / "test_mixture_1m.csv",
                                                           REGMIX / "test_pile_loss_1m.csv", "index", TARGET)
    assert test_groups == groups
    natural = weights.mean(axis=0)
    for model in MODELS:  # imports (lightgbm, scipy, sklearn) and first-call costs out of the timings
        fit_predictor(model, weights[:64], targets[:64])
    rows = {}
    for model in MODELS:
        fits = [timed(lambda: fit_predictor(model, weights, targets, seed=0)) for _ in range(args.repeats)]
        predictor = fits[0][0]
        proposal, propose_seconds = timed(lambda: propose(predictor, natural, n_candidates=args.candidates))
        rows[model] = {"fit": statistics.median(seconds for _, seconds in fits), "propose": propose_seconds,
                       "spearman": score(test_targets, predictor.predict(test_weights))["spearman"],
                       "predicted": proposal["predicted"]}
    base = rows["ridge"]
    print(f"RegMix 1M proxies: 512 train / 256 test mixtures, {len(groups)} groups, target {TARGET}")
    print(f"{'model':<11} {'fit s':>8} {'x ridge':>8} {f'propose {args.candidates} s':>18} {'x ridge':>8} "
          f"{'test spearman':>14} {'proposal predicted':>19}")
    for model, row in rows.items():
        print(f"{model:<11} {row['fit']:>8.3f} {row['fit'] / base['fit']:>8.1f} {row['propose']:>18.2f} "
              f"{row['propose'] / base['propose']:>8.1f} {row['spearman']:>14.4f} {row['predicted']:>19.4f}")
    with threadpool_limits(os.cpu_count()):
        all_cores = statistics.median(timed(lambda: predictors._fit_mixing_law(weights, targets, 0))[1]
                                      for _ in range(args.repeats))
    one = rows["mixing-law"]["fit"]
    print(f"mixing-law fit, BLAS on {os.cpu_count()} threads: {all_cores:.3f} s; on one thread: {one:.3f} s "
          f"({all_cores / one:.1f}x faster)")


if __name__ == "__main__":
    main()
