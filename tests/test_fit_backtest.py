"""Expanding-window backtests: on laws with known noise, do 95% prediction intervals cover ~95%?"""

import time

import numpy as np
import pytest

from isoflop.fit import fit_chinchilla, fit_isoflop, fit_study
from isoflop.fit.backtest import backtest
from test_fit_coverage import random_law
from test_fit_study import small_study

NOISE = 0.01  # log-normal, about what seeds do to the loss of small runs


def study(true, budgets, sizes, seed):
    """Runs of the Chinchilla law `true` at `sizes` sizes per budget around its optimum, with NOISE."""
    from isoflop.fit.laws import optimal_allocation

    rng = np.random.default_rng(seed)
    data = {key: [] for key in ("N", "D", "C", "budget", "loss")}
    e, a, b, alpha, beta = true
    for compute in budgets:
        n = optimal_allocation(np.array(true), compute)["N_opt"] * np.logspace(-0.7, 0.7, sizes)
        d = compute / (6 * n)
        for key, values in (("N", n), ("D", d), ("C", np.full(sizes, compute)), ("budget", np.full(sizes, compute)),
                            ("loss", (e + a / n**alpha + b / d**beta) * np.exp(rng.normal(0, NOISE, sizes)))):
            data[key].extend(values)
    return {key: np.array(values) for key, values in data.items()}


def chinchilla_coverage(n_laws, resamples, seed):
    rng = np.random.default_rng(seed)
    hits, folds = [], []
    for index in range(n_laws):
        data = study(random_law(rng), (1e17, 1e18, 1e19, 1e20), 7, seed + index)
        result = backtest(data, lambda t: fit_chinchilla(t["N"], t["D"], t["loss"], bootstrap=resamples, seed=index),
                          ("N", "D"), seed=index)
        hits.append(result["coverage95"] * result["n_predictions"])
        folds.append(result)
    total = sum(r["n_predictions"] for r in folds)
    return sum(hits) / total, folds


def test_backtest_95_intervals_cover_known_noise():
    start = time.perf_counter()
    coverage, folds = chinchilla_coverage(n_laws=3, resamples=60, seed=11)
    assert 0.85 <= coverage <= 0.99
    for result in folds:
        assert [len(fold["train_budgets"]) for fold in result["folds"]] == [2, 3]
        assert result["folds"][0]["n_predicted"] == 14 and result["folds"][1]["n_predicted"] == 7
        assert result["coverage90"] <= result["coverage95"]
        assert abs(result["bias"]) < 0.02 and result["mean_abs_rel_error"] < 0.03
    assert time.perf_counter() - start < 30


@pytest.mark.slow
def test_backtest_coverage_over_many_laws():
    coverage, _ = chinchilla_coverage(n_laws=30, resamples=200, seed=5)
    assert 0.90 <= coverage <= 0.99


def test_isoflop_backtest_and_a_fold_that_cannot_fit():
    data = study((1.8, 480.0, 2100.0, 0.35, 0.37), (1e17, 1e18, 1e19, 1e20), 7, seed=3)
    result = backtest(data, lambda t: fit_isoflop(t["C"], t["N"], t["D"], t["loss"], budget=t["budget"],
                                                  bootstrap=100), ("N", "C"))
    assert len(result["folds"]) == 2 and result["n_predictions"] == 21
    assert 0.0 <= result["coverage95"] <= 1.0 and result["mean_abs_rel_error"] < 0.05

    def refuse(train):
        from isoflop.errors import UserError

        raise UserError("not enough")

    failed = backtest(data, refuse, ("N", "C"))
    assert failed["n_predictions"] == 0 and all(fold["error"] == "not enough" for fold in failed["folds"])


def test_fit_study_reports_backtests():
    laws = fit_study(small_study(budgets=(1e15, 3e15, 1e16, 3e16)), bootstrap=50)
    for name in ("chinchilla", "isoflop"):
        result = laws["backtest"][name]
        assert [fold["train_budgets"] for fold in result["folds"]] == [[1e15, 3e15], [1e15, 3e15, 1e16]]
        assert {"mean_abs_rel_error", "bias", "coverage90", "coverage95"} <= set(result)


def test_a_fold_whose_law_predicts_non_finite_losses_is_reported_not_scored():
    """The default study's chinchilla fit on its two smallest budgets once predicted NaN: that fold is an error,
    and the other folds still score (the report crashed on the NaN's `null`)."""
    data = study(random_law(np.random.default_rng(0)), (1e17, 1e18, 1e19, 1e20), 7, 0)

    def fit(train):
        law = fit_chinchilla(train["N"], train["D"], train["loss"], bootstrap=20, seed=0)
        if len(np.unique(train["budget"])) == 2:
            law["params"] = {**law["params"], "E": float("nan")}
        return law

    result = backtest(data, fit, ("N", "D"))
    first, *rest = result["folds"]
    assert first["error"] == "the law fitted on these budgets predicts non-finite losses"
    assert "mean_abs_rel_error" not in first and len(rest) == 1
    assert result["n_predictions"] == rest[0]["n_predicted"] == 7
    assert np.isfinite(result["mean_abs_rel_error"]) and np.isfinite(rest[0]["coverage95"])
