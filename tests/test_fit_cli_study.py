"""`isoflop predict` on a study's laws.json: which law it uses and why, and the compute-optimal allocation."""

import json

import numpy as np
import pandas as pd
import pytest

from isoflop.cli import main
from isoflop.fit import fit_study, predict
from isoflop.fit.laws import optimal_allocation
from isoflop.fit.predict import study_law
from test_fit_isoflop import TRUE
from test_fit_study import small_study


@pytest.fixture(scope="module")
def laws_json(tmp_path_factory):
    """A study's laws.json fitted to Chinchilla-shaped runs (TRUE) at 4 budgets, so the backtest has folds."""
    laws = fit_study(small_study(budgets=(1e15, 3e15, 1e16, 3e16)), bootstrap=200, seed=0)
    path = tmp_path_factory.mktemp("study") / "laws.json"
    path.write_text(json.dumps(laws))
    return path, laws


def run(capsys, *argv):
    code = main(["predict", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_only_C_gives_the_compute_optimal_allocation_with_its_intervals(laws_json, capsys):
    path, laws = laws_json
    target = laws["chinchilla"]["at_target"]  # what the fit stage computed at 10x the largest budget
    code, out, _ = run(capsys, path, "--law", "chinchilla", "--C", target["C"])
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "law: chinchilla (chosen with --law)"
    assert lines[1] == "compute-optimal allocation at C = 3e+17 FLOPs (chinchilla law):"
    for line, key in zip(lines[2:5], ("N_opt", "D_opt", "loss")):
        low, high = target["ci95"][key]
        assert f"{target[key]:.5g}" in line and f"95% confidence interval [{low:.5g}, {high:.5g}]" in line
    truth = optimal_allocation(TRUE, target["C"])
    assert target["ci95"]["N_opt"][0] < truth["N_opt"] < target["ci95"]["N_opt"][1]
    # the loss also has a prediction interval: wider than the confidence one, as it adds a run's noise
    pred = lines[5].split("95% prediction interval [")[1].split("]")[0].split(", ")
    low, high = map(float, pred)
    assert low < target["ci95"]["loss"][0] and target["ci95"]["loss"][1] < high
    assert "(a new run's loss, with its noise)" in lines[5]


def test_the_default_law_is_the_one_with_the_smaller_held_out_error(laws_json, capsys):
    path, laws = laws_json
    errors = {name: laws["backtest"][name]["mean_abs_rel_error"] for name in ("chinchilla", "isoflop")}
    best = min(errors, key=errors.get)
    _, out, _ = run(capsys, path, "--C", 1e17)
    assert out.splitlines()[0] == (f"law: {best} (the smaller mean |relative error| in the backtest: "
                                   f"chinchilla {errors['chinchilla']:.2%}, isoflop {errors['isoflop']:.2%})")
    # without a backtest, the extrapolation check decides; with one law fitted, that one
    flipped = {**laws, "backtest": None,
               "extrapolation": {"laws": {"chinchilla": {"mean_abs_rel_error": 0.01},
                                          "isoflop": {"mean_abs_rel_error": 0.02}}}}
    assert study_law(flipped) == ("chinchilla", "the smaller mean |relative error| in the extrapolation "
                                                "check: chinchilla 1.00%, isoflop 2.00%")
    assert study_law({**laws, "chinchilla": None}) == ("isoflop", "the only law fitted")


def test_N_and_D_or_a_csv_use_the_chosen_law(laws_json, capsys, tmp_path):
    path, laws = laws_json
    loss, (low, high) = predict(laws["chinchilla"], 1e7, 2e8)
    _, out, _ = run(capsys, path, "--law", "chinchilla", "--N", 1e7, "--D", 2e8)
    assert out.splitlines()[1].startswith(f"loss {loss:.5g}  95% confidence interval [{low:.5g}, {high:.5g}]")
    rows = tmp_path / "rows.csv"
    pd.DataFrame({"N": [1e7, 3e7], "C": [1e17, 1e17]}).to_csv(rows, index=False)
    code, _, _ = run(capsys, path, "--law", "isoflop", "--csv", rows, "--out", tmp_path / "pred.csv")
    expected, _ = predict(laws["isoflop"], np.array([1e7, 3e7]), C=np.array([1e17, 1e17]))
    assert code == 0
    assert pd.read_csv(tmp_path / "pred.csv")["predicted"].to_numpy() == pytest.approx(expected, rel=1e-12)


def test_mistakes_name_the_file_and_key(laws_json, capsys, tmp_path):
    path, laws = laws_json
    unfitted = tmp_path / "laws.json"
    unfitted.write_text(json.dumps({**laws, "isoflop": None}))
    assert run(capsys, unfitted, "--law", "isoflop", "--C", 1e17) == (
        1, "", f"isoflop predict: error: {unfitted}: key 'isoflop' holds no fitted law (fitted: chinchilla)\n")
    single = tmp_path / "law.json"
    single.write_text(json.dumps(laws["chinchilla"]))
    code, _, err = run(capsys, single, "--law", "isoflop", "--C", 1e17)
    assert code == 1 and err == (f"isoflop predict: error: {single}: --law picks one of a study's laws.json, "
                                 "but this file is one 'chinchilla' law\n")
    # a single-law file still answers --C alone, --N --D as before
    code, out, _ = run(capsys, single, "--C", 1e17)
    assert code == 0 and out.startswith("compute-optimal allocation at C = 1e+17 FLOPs (chinchilla law):")


def test_a_law_fitted_without_bootstrap_has_only_the_noise_interval(tmp_path, capsys):
    from isoflop.fit import fit_isoflop

    runs = small_study()
    law = fit_isoflop(runs["C"], runs["N"], runs["D"], runs["val_loss"], budget=runs["budget"], bootstrap=0)
    path = tmp_path / "iso.json"
    path.write_text(json.dumps(law))
    code, out, _ = run(capsys, path, "--C", 1e17)
    lines = out.splitlines()
    n_opt = law["params"]["k_N"] * 1e17 ** law["params"]["a"]
    assert code == 0 and lines[1] == f"  N*   = {n_opt:<11.5g} no confidence interval (fitted without bootstrap)"
    low, high = map(float, lines[4].split("95% prediction interval [")[1].split("]")[0].split(", "))
    loss = law["params"]["k_L"] * 1e17 ** -law["params"]["gamma"]
    assert low < loss < high  # the residuals' spread around the law's loss
