"""Seed noise from replicated grid points, lack of fit against log C, the approaches' verdict, the report's
backtest and comparison sections, and the planner's replicates at the smallest budgets."""

import numpy as np
import pandas as pd
import pytest
import yaml

from isoflop.fit import fit_study
from isoflop.fit.diagnostics import lack_of_fit, seed_noise, verdict
from isoflop.fit.predict import predict_intervals
from test_fit_study import small_study

REPO_CONFIG = "config.yaml"


def test_seed_noise_is_the_pooled_sd_of_replicates():
    budget = np.array([1.0, 1.0, 1.0, 2.0, 2.0, 3.0])
    n = np.array([10.0, 10.0, 10.0, 20.0, 20.0, 30.0])
    loss = np.array([3.0, 3.2, 3.1, 2.5, 2.9, 2.0])
    noise = seed_noise(budget, n, loss)
    # squares about the means: 0.02 (3 seeds) and 0.08 (2 seeds) over 2 + 1 degrees of freedom
    assert noise["dof"] == 3 and noise["n_points"] == 2
    assert noise["sd"] == pytest.approx(np.sqrt(0.10 / 3))
    low, high = noise["ci95_sd"]
    assert low < noise["sd"] < high
    assert [point["n_seeds"] for point in noise["points"]] == [3, 2]
    assert seed_noise(budget[[0, 3, 5]], n[[0, 3, 5]], loss[[0, 3, 5]]) is None


def replicated_study(noise=0.01, seeds=4, seed=0):
    """small_study plus `seeds` - 1 extra seeds at every size of its smallest budget, all with log-normal `noise`."""
    runs = small_study(budgets=(1e15, 3e15, 1e16, 3e16), noise=noise, seed=seed)
    rng = np.random.default_rng(seed + 100)
    smallest = runs[runs["budget"] == runs["budget"].min()]
    extra = []
    for replicate in range(1, seeds):
        copy = smallest.copy()
        copy["run_id"] = copy["run_id"] + f"-r{replicate}"
        # the same grid point, another seed: the noise-free loss is the first seed's divided by its own noise
        copy["val_loss"] = copy["val_loss"] * np.exp(rng.normal(0, noise, len(copy)))
        extra.append(copy)
    return pd.concat([runs, *extra], ignore_index=True)


def test_replicates_measure_the_noise_and_floor_the_prediction_intervals():
    runs = replicated_study(noise=0.02, seeds=4)
    laws = fit_study(runs, bootstrap=30, seed=0)
    noise = laws["seed_noise"]
    # the best size and its two neighbours (of 5) x 3 extra seeds = 9 degrees of freedom
    assert noise["dof"] == 9 and noise["n_points"] == 3 and noise["scope"].startswith("near each budget's optimum")
    # a point's seeds are its first run's loss, once as is and 3 times with a fresh 2% draw, so
    # their expected variance is 3/4 of 2% squared; its chi-square interval (9 dof) holds that sd
    low, high = (noise["sd_log"] * bound / noise["sd"] for bound in noise["ci95_sd"])
    assert low < np.sqrt(0.75) * 0.02 < high and high < 0.045
    chinchilla = laws["chinchilla"]
    assert chinchilla["residuals"]["seed_sd"] == pytest.approx(noise["sd_log"])
    residuals = chinchilla["residuals"]
    spread = np.sqrt(np.mean((np.array(residuals["values"]) * residuals["inflation"]) ** 2))
    widths = {}
    for floor in (None, 3 * spread):  # a noise floor above the residuals' spread widens the band to it
        # the noise part of the interval alone: the study's calibration on extrapolation errors is wider here
        law = dict(chinchilla, residuals={**residuals, "seed_sd": floor}, calibration=None)
        interval = predict_intervals(law, N=[3e7], D=[6e8], seed=1)
        widths[floor] = np.log(interval["pred_hi"][0] / interval["pred_lo"][0]) / 2
    assert widths[3 * spread] >= 1.9 * 3 * spread > 1.5 * widths[None]
    gap = laws["approaches"]["loss_at_next_budget"]
    assert gap["noise_threshold"] == pytest.approx(2 * np.sqrt(2) * noise["sd"])
    assert gap["exceeds_noise"] == (abs(gap["gap"]) > gap["noise_threshold"])


def test_envelope_counts_budgets_not_seeds():
    runs = replicated_study(seeds=3)
    only_smallest = runs[runs["budget"] == runs["budget"].min()]
    laws = fit_study(only_smallest, bootstrap=0)
    assert laws["envelope"] is None  # 5 sizes, each at one budget with 3 seeds: no curves


def test_lack_of_fit_sees_a_bend_and_not_noise():
    rng = np.random.default_rng(0)
    log_c = np.repeat(np.log(np.geomspace(1e15, 1e19, 6)), 5)
    u = log_c - log_c.mean()
    flat = rng.normal(0, 0.01, len(u))
    bent = flat + 0.004 * u**2
    curved, straight = lack_of_fit(log_c, bent, 0.01), lack_of_fit(log_c, flat, 0.01)
    assert curved["curved"] and curved["quadratic"]["p"] < 1e-3
    assert curved["quadratic"]["ci95"][0] < 0.004 < curved["quadratic"]["ci95"][1]
    assert curved["runs"]["runs"] < curved["runs"]["expected"]  # the bend groups the signs
    assert not straight["curved"] and straight["quadratic"]["p"] > 0.05
    # the bend leaves a run's 95% band soon past the largest budget; the straight residuals much later
    assert 1.0 < curved["trust_factor"] < 3.0
    assert straight["trust_factor"] is None or straight["trust_factor"] > 10 * curved["trust_factor"]
    assert "bend against log C" in verdict("law", curved) and "no significant curvature" in verdict("law", straight)
    assert lack_of_fit(log_c[:10], flat[:10], 0.01) is None  # two computes: no curvature to see


def test_a_law_that_bends_is_flagged_by_the_study_s_test():
    from isoflop.fit import fit_chinchilla
    from isoflop.fit.study import _lack_of_fit

    runs = small_study(budgets=(1e15, 3e15, 1e16, 3e16, 1e17, 3e17), noise=0.002)
    data = {key: runs[col].to_numpy() for key, col in (("N", "N"), ("D", "D"), ("C", "C"), ("loss", "val_loss"))}
    u = np.log(data["C"]) - np.log(data["C"]).mean()
    for bend, curved in ((0.0, False), (0.01, True)):  # loss bending up at both ends of the range, or not
        loss = data["loss"] * np.exp(bend * u**2)
        law = fit_chinchilla(data["N"], data["D"], loss)
        assert _lack_of_fit(law, {**data, "loss": loss}, None)["curved"] == curved, bend


def test_approaches_that_disagree_are_said_to_and_the_report_shows_the_sections(tmp_path):
    from isoflop.report import approaches_lines, backtest_lines, lack_of_fit_lines, seed_noise_lines

    runs = replicated_study(noise=0.005, seeds=3)
    laws = fit_study(runs, bootstrap=60, seed=0)
    [pair] = [p for p in laws["approaches"]["pairs"] if {p["first"], p["second"]} == {"isoflop", "chinchilla"}]
    assert pair["disagree"] == (pair["ci95"][0] > 0 or pair["ci95"][1] < 0)
    text = "\n".join(approaches_lines(laws))
    assert ("disagree beyond their intervals on a" in text) == pair["disagree"]
    assert f"**Trust {'approach 2 (IsoFLOP)' if laws['approaches']['trust'] == 'isoflop' else 'approach 3'}" in text
    ranking = laws["backtest_ranking"]
    errors = [entry["mean_abs_rel_error"] for entry in ranking]
    assert errors == sorted(errors) and {entry["law"] for entry in ranking} == {"chinchilla", "isoflop", "overtrained"}
    table = "\n".join(backtest_lines(laws))
    assert "coverage 90% | coverage 95%" in table and "ranked by backtest error" in table
    best = ranking[0]
    assert "1. " in table and f"{best['mean_abs_rel_error']:.2%}" in table
    for name, result in laws["backtest"].items():
        assert f"| **{name}, all folds** | | {result['n_predictions']} |" in table
    noise_text = "\n".join(seed_noise_lines(laws))
    assert f"{laws['seed_noise']['dof']} degrees of freedom" in noise_text and "| budget | N | seeds |" in noise_text
    assert "No grid point was trained with several seeds" in "\n".join(seed_noise_lines({}))
    assert "trust the law up to about" in "\n".join(lack_of_fit_lines(laws))
    ext = laws["extrapolation"]
    assert ext["factor"] == pytest.approx(3.0) and ext["train_budgets"] == [1e15, 3e15, 1e16]
    row = ext["runs"][0]["chinchilla"]
    assert row["pred_lo95"] <= row["conf_lo95"] <= row["predicted"] <= row["conf_hi95"] <= row["pred_hi95"]
    assert "prediction" in ext["intervals"]["pred_lo95/pred_hi95"] and "confidence" in ext["intervals"]["ci95"]
    nxt = laws["next_budget"]
    assert nxt["loss_pred95"][0] <= nxt["ci95"]["loss"][0] and nxt["ci95"]["loss"][1] <= nxt["loss_pred95"][1]
    from isoflop.plots.laws import plot_backtest, plot_isoflop_curves
    from matplotlib.image import imread

    plot_backtest(laws, tmp_path / "backtest.png")
    plot_isoflop_curves(runs, laws["isoflop"], tmp_path / "iso.png", seed_noise=laws["seed_noise"])
    assert imread(tmp_path / "backtest.png").shape[1] > 1000 and (tmp_path / "iso.png").stat().st_size > 10_000


def test_the_planner_replicates_only_the_smallest_budgets():
    from isoflop.config import validate_config
    from isoflop.plan import make_plan

    with open(REPO_CONFIG) as handle:
        config = validate_config(yaml.safe_load(handle))
    # the fitted grid: the plan's forecast runs (plan.forecast_budgets, one run each) sit beyond it, unreplicated
    runs = [run for run in make_plan(config, "tokens")["runs"].values() if not run.get("forecast")]
    smallest = min(config["plan"]["budgets"])
    assert config["plan"]["seeds"] == 3 and config["plan"]["replicated_budgets"] == 1
    assert sorted({run["replicate"] for run in runs if run["budget"] == smallest}) == [0, 1, 2]
    assert {run["replicate"] for run in runs if run["budget"] != smallest} == {0}
    assert len(runs) == 25 + 10
    config["plan"]["replicated_budgets"] = 0
    config["plan"]["forecast_budgets"] = []
    assert len(make_plan(config, "tokens")["runs"]) == 75
    config["plan"]["seeds"] = 1
    every = make_plan(config, "tokens")["runs"]
    assert len(every) == 25 and set(every) <= {run["run_id"] for run in runs}  # replicate 0 keeps its run ids


def test_loss_to_loss_recovers_a_known_shifted_power_law():
    from isoflop.fit.transfer import fit_transfer
    from isoflop.report import loss_to_loss_lines

    runs = small_study(budgets=(1e15, 3e15, 1e16, 3e16), noise=0.001)
    e_x = 1.8  # test_fit_isoflop.TRUE's E
    rng = np.random.default_rng(3)
    # y = 1.2 (x - E_x) + 2.1 is itself a Chinchilla law with E = 2.1, so each loss's own fit finds its shift
    loss_y = (1.2 * (runs["val_loss"] - e_x) + 2.1) * np.exp(rng.normal(0, 0.001, len(runs)))
    law = fit_transfer(runs["N"], runs["D"], runs["budget"], runs["val_loss"], loss_y, bootstrap=100)
    p = law["params"]
    # each E comes from one decade of compute, so it is known to a few hundredths; K and kappa absorb that
    assert p["E_x"] == pytest.approx(e_x, abs=0.05) and p["E_y"] == pytest.approx(2.1, abs=0.1)
    assert p["K"] == pytest.approx(1.2, rel=0.15) and p["kappa"] == pytest.approx(1.0, abs=0.1)
    assert law["ci95"]["kappa"][0] < p["kappa"] < law["ci95"]["kappa"][1]
    assert law["rms_nats"] < 0.015
    assert law["held_out"]["n_runs"] == 5 and law["held_out"]["mean_abs_rel_error"] < 0.01
    text = "\n".join(loss_to_loss_lines({"loss_to_loss": {"web": law}}))
    assert f"| web | {p['K']:.4g} [" in text and "Brandfonbrener" in text
