"""Approach 1 in the study's fit: the envelope of each size's final losses, its allocation and tokens per
parameter, evaluated in isoflop.fit.frontier for the figures and the report."""

import json

import numpy as np
import pandas as pd
import pytest

from isoflop.fit import fit_study
from isoflop.fit.frontier import allocation_curves, allocation_exponents, tokens_per_param_curve
from isoflop.fit.laws import optimal_allocation
from test_fit_isoflop import TRUE, TRUE_A
from test_fit_study import small_study

BUDGETS = (1e15, 3e15, 1e16, 3e16)


def ladder_study(budgets=BUDGETS, noise=0.003, seed=0):
    """A study like the workflow's: one ladder of sizes, each budget training the 5 nearest its optimum, so
    most sizes are trained at several budgets (what the envelope compares)."""
    optima = [optimal_allocation(TRUE, budget)["N_opt"] for budget in budgets]
    return small_study(budgets, noise=noise, seed=seed, ladder=np.geomspace(min(optima) / 3, max(optima) * 3, 9))


@pytest.fixture(scope="module")
def laws():
    return fit_study(ladder_study(), bootstrap=100, seed=0)


def test_the_envelope_is_a_third_approach_beside_the_other_keys(laws):
    assert {"chinchilla", "isoflop", "envelope", "extrapolation", "next_budget", "backtest", "n_runs",
            "n_runs_used", "warnings"} <= set(laws)
    envelope = laws["envelope"]
    assert envelope["law"] == "envelope" and envelope["n_runs"] == 7  # the 7 of 9 sizes trained at 2+ budgets
    a, (low, high) = envelope["params"]["a"], envelope["ci95"]["a"]
    assert low < a < high and a == pytest.approx(TRUE_A, abs=0.08)
    # D = C / 6N exactly in this study, so the fitted FLOPs per token are 6N
    assert envelope["flops_per_token"]["c"] == pytest.approx(6.0) and envelope["flops_per_token"]["p"] == pytest.approx(1.0)
    # each budget's points share its mean achieved C, so the sizes' curves meet at the same computes
    assert len(np.unique(np.round(envelope["runs"]["C"], -8))) == len(BUDGETS)
    nxt = laws["next_budget"]["envelope"]
    assert nxt["C"] == pytest.approx(3e17) and nxt["D_opt"] == pytest.approx(3e17 / (6 * nxt["N_opt"]))
    assert nxt["ci95"]["N_opt"][0] < nxt["N_opt"] < nxt["ci95"]["N_opt"][1]
    assert nxt["N_opt"] == pytest.approx(optimal_allocation(TRUE, 3e17)["N_opt"], rel=0.5)
    json.dumps(laws, allow_nan=False)


def test_no_envelope_without_sizes_trained_at_several_budgets():
    laws = fit_study(small_study(), bootstrap=20)  # every budget has its own sizes
    assert laws["envelope"] is None and "envelope" not in laws["next_budget"]
    assert any(w.startswith("envelope: not fitted") for w in laws["warnings"])


def test_one_size_winning_everywhere_is_no_envelope():
    # two sizes at every budget, the smaller always better: the grid does not bracket N*, so there is no slope
    runs = pd.DataFrame([{"run_id": f"{c:.0e}-{n:.0e}", "N": n, "D": c / (6 * n), "C": c, "budget": c,
                          "val_loss": 3.0 + np.log10(n) - np.log10(c) / 10, "status": "ok"}
                         for c in BUDGETS for n in (1e6, 1e7)])
    laws = fit_study(runs, bootstrap=20)
    assert laws["envelope"] is None
    assert any("one size (N = 1e+06) has the lowest loss at every compute" in w for w in laws["warnings"])


def test_envelope_exponents_and_curves(laws):
    envelope = laws["envelope"]
    exponents = allocation_exponents(envelope)
    a, ci = exponents["N_opt"]
    assert exponents["D_opt"][0] == pytest.approx(1 - a)  # C = 6ND: D* = C / 6N* grows as C^(1-a)
    assert exponents["D_opt"][1] == pytest.approx([1 - ci[1], 1 - ci[0]])
    compute = np.geomspace(1e15, 3e17, 5)
    curves = allocation_curves(envelope, compute)
    assert curves["N_opt"][0] == pytest.approx(envelope["params"]["k_N"] * compute**a)
    assert curves["D_opt"][0] == pytest.approx(compute / (6 * curves["N_opt"][0]))


def test_tokens_per_param_bands_come_from_each_resample_s_own_ratio(laws):
    chinchilla = laws["chinchilla"]
    compute = np.array([1e16, 3e17])
    ratio, band = tokens_per_param_curve(chinchilla, compute)
    curves = allocation_curves(chinchilla, compute)
    assert ratio == pytest.approx(curves["D_opt"][0] / curves["N_opt"][0])
    # at a fixed C a resample with a larger N* has a smaller D* = C / 6N*: its ratio is C / 6N*^2, so the band is
    # the N* band's ends mapped and swapped, wider than the N* band's ratio to the D* band would suggest
    n_low, n_high = curves["N_opt"][1]
    assert band[0] == pytest.approx(compute / (6 * n_high**2), rel=0.02)
    assert band[1] == pytest.approx(compute / (6 * n_low**2), rel=0.02)
    truth = optimal_allocation(TRUE, 1e16)
    assert ratio[0] == pytest.approx(truth["D_opt"] / truth["N_opt"], rel=0.3)
