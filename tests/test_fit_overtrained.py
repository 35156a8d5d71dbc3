"""The over-trained law of Gadre et al. (2024), least squares on raw loss, constraints, and
`isoflop predict --csv` with confidence and prediction intervals."""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import shared_file

from isoflop.cli import main
from isoflop.errors import UserError
from isoflop.fit.constrained import Constraints, fit_law

SMALL = ("d=96_l=8_h=4", "d=512_l=8_h=4", "d=576_l=24_h=8", "d=1024_l=24_h=8")
PUBLISHED = {"rpj-open_lm_1b-32.0": 0.710, "rpj-open_lm_7b-1.0": 0.732}  # % relative error, Gadre et al.


@pytest.fixture(scope="module")
def gadre_csvs(tmp_path_factory):
    """The paper's 5-run RedPajama fit set and the two held-out large runs, as CSVs."""
    models = pd.read_csv(shared_file("reference/mlfoundations/models.csv"))
    rpj = models[models["dataset"] == "rpj"]
    fit_set = rpj[(rpj["model"].isin(SMALL) & (rpj["M"] == 20)) | ((rpj["model"] == SMALL[0]) & (rpj["M"] == 320))]
    held_out = rpj[rpj["name"].isin(PUBLISHED)]
    assert len(fit_set) == 5 and len(held_out) == 2
    folder = tmp_path_factory.mktemp("gadre")
    fit_set.to_csv(folder / "fit.csv", index=False)
    held_out.to_csv(folder / "heldout.csv", index=False)
    return folder


def test_published_relative_errors_of_the_overtrained_law(gadre_csvs, capsys):
    folder = gadre_csvs
    assert main(["fit", str(folder / "fit.csv"), "--law", "overtrained", "--objective", "lsq",
                 "--loss-col", "loss_c4_val", "--bootstrap", "200", "--out", str(folder / "law.json")]) == 0
    law = json.loads((folder / "law.json").read_text())
    assert law["law"] == "overtrained" and law["loss_function"] == "lsq" and law["n_points"] == 5
    # the exponent Gadre et al. report for N and D is 2 eta (their C-M form halves it)
    assert 2 * law["params"]["eta"] == pytest.approx(0.273, abs=0.002)
    assert main(["predict", str(folder / "law.json"), "--csv", str(folder / "heldout.csv"),
                 "--loss-col", "loss_c4_val", "--out", str(folder / "pred.csv")]) == 0
    pred = pd.read_csv(folder / "pred.csv").set_index("name")
    for name, published in PUBLISHED.items():
        row = pred.loc[name]
        assert 100 * abs(row["rel_error"]) == pytest.approx(published, abs=0.05)
        assert row["conf_lo95"] < row["predicted"] < row["conf_hi95"]
        assert row["pred_lo95"] <= row["conf_lo95"] and row["conf_hi95"] <= row["pred_hi95"]
        assert row["inside_pred95"]
    assert "inside the 95% prediction interval" in capsys.readouterr().out


def synthetic_runs(law, params, noise, seed=0):
    rng = np.random.default_rng(seed)
    n = np.repeat(np.geomspace(1e7, 1e9, 6), 5)
    d = n * np.tile([5.0, 10.0, 20.0, 80.0, 320.0], 6)
    from isoflop.fit.constrained import FORMS

    loss = FORMS[law].predict(params, n, d)[0]
    return n, d, loss + rng.normal(0, noise, len(n))


TRUE_OVERTRAINED = {"E": 1.9, "a": 150.0, "b": 400.0, "eta": 0.14}


@pytest.mark.parametrize("objective", ["lsq", "huber"])
def test_known_parameters_are_recovered(objective):
    n, d, loss = synthetic_runs("overtrained", TRUE_OVERTRAINED, noise=0.002)
    fit = fit_law("overtrained", n, d, loss, objective=objective, bootstrap=100, seed=1)
    covered = 0
    for name, true in TRUE_OVERTRAINED.items():
        assert fit["params"][name] == pytest.approx(true, rel=0.05), name
        low, high = fit["ci95"][name]
        assert low < fit["params"][name] < high
        covered += low <= true <= high
    assert covered >= 3  # 95% intervals: one miss in four is not evidence against them
    assert fit["warnings"] == []


def test_fixed_tied_and_bounded_parameters_are_honoured():
    true = {"E": 1.7, "A": 400.0, "B": 1500.0, "alpha": 0.33, "beta": 0.33}
    n, d, loss = synthetic_runs("chinchilla", true, noise=0.001)
    fit = fit_law("chinchilla", n, d, loss, objective="lsq", bootstrap=50,
                  constraints=Constraints({"E": 1.7}, {"beta": "alpha"}, {"alpha": (0.0, 0.3)}))
    params = fit["params"]
    assert params["E"] == 1.7 and params["beta"] == params["alpha"]
    assert params["alpha"] == pytest.approx(0.3, abs=1e-6)  # the truth (0.33) lies past the bound
    assert any("alpha sits at its bound" in w for w in fit["warnings"])
    samples = fit["bootstrap"]["samples"]
    assert set(samples["E"]) == {1.7} and max(samples["alpha"]) <= 0.3 + 1e-12
    assert samples["alpha"] == samples["beta"]
    free = fit_law("chinchilla", n, d, loss, objective="lsq", constraints=Constraints({"E": 1.7}, {}, {}))
    assert free["params"]["alpha"] == pytest.approx(0.33, abs=0.02)


def test_as_many_points_as_parameters_needs_allow_exact():
    n, d, loss = synthetic_runs("overtrained", TRUE_OVERTRAINED, noise=0.0)
    rows = [0, 7, 14, 21]  # 4 distinct (N, D) for 4 parameters
    with pytest.raises(UserError, match="4 free parameters but only 4 distinct points"):
        fit_law("overtrained", n[rows], d[rows], loss[rows], objective="lsq")
    exact = fit_law("overtrained", n[rows], d[rows], loss[rows], objective="lsq", allow_exact=True)
    assert any("interpolates" in w for w in exact["warnings"])
    with pytest.raises(UserError, match="but only 4 distinct"):  # least squares only
        fit_law("overtrained", n[rows], d[rows], loss[rows], objective="huber", allow_exact=True)


@pytest.mark.parametrize(("flags", "message"), [
    (["--fix", "gamma=1"], "no parameter 'gamma'"),
    (["--fix", "E"], "expected NAME=VALUE"),
    (["--bound", "alpha=1"], "expected NAME=LOW,HIGH"),
    (["--bound", "alpha=1,0"], "lower bound must be below"),
    (["--tie", "beta=E", "--fix", "E=1"], "'E' must be a free parameter"),
])
def test_constraint_mistakes_are_one_line(tmp_path, capsys, flags, message):
    n, d, loss = synthetic_runs("chinchilla", {"E": 1.7, "A": 400.0, "B": 1500.0, "alpha": 0.3, "beta": 0.3}, 0.0)
    pd.DataFrame({"N": n, "D": d, "loss": loss}).to_csv(tmp_path / "runs.csv", index=False)
    code = main(["fit", str(tmp_path / "runs.csv"), "--law", "chinchilla", "--out", str(tmp_path / "x.json"), *flags])
    err = capsys.readouterr().err
    assert code == 1 and message in err and err.count("\n") == 1
