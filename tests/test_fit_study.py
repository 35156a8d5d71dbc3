"""The workflow's fit stage (`fit_study`), the `isoflop fit` / `isoflop predict` CLI and the figures."""

import json

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from isoflop.cli import main
from isoflop.errors import UserError
from isoflop.fit import fit_study
from isoflop.plots.laws import (
    plot_curve,
    plot_extrapolation,
    plot_fitted_vs_observed,
    plot_frontier,
    plot_isoflop_curves,
)
from test_fit_isoflop import TRUE, chinchilla_loss
from isoflop.fit.laws import optimal_allocation


def small_study(budgets=(1e15, 3e15, 1e16), sizes=5, noise=0.005, seed=0, ladder=None):
    """A study the size of a laptop run: 3 budgets x 5 sizes, losses of a few nats. Each budget's sizes centre
    on its optimum; with a `ladder` of sizes, they are the `sizes` rungs nearest it (as the workflow plans)."""
    rng = np.random.default_rng(seed)
    rows = []
    for budget in budgets:
        n_opt = optimal_allocation(TRUE, budget)["N_opt"]
        grid = (n_opt * np.logspace(-0.6, 0.6, sizes) if ladder is None
                else np.sort(ladder[np.argsort(np.abs(np.log(ladder / n_opt)))[:sizes]]))
        for i, n in enumerate(grid):
            achieved = budget * np.exp(rng.normal(0, 0.01))
            d = achieved / (6 * n)
            rows.append({"run_id": f"b{budget:.0e}-{i}", "N": n, "D": d, "C": achieved, "budget": budget,
                         "val_loss": chinchilla_loss(n, d) * np.exp(rng.normal(0, noise)), "status": "ok"})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def study():
    runs = small_study()
    runs.loc[2, "status"] = "diverged"
    runs.loc[7, "val_loss"] = np.nan
    return runs, fit_study(runs, bootstrap=300, seed=0)


def test_study_fits_both_laws_with_finite_intervals(study):
    runs, laws = study
    assert laws["n_runs"] == 15 and laws["n_runs_used"] == 13
    assert any("status is not ok" in w and "b1e+15-2" in w for w in laws["warnings"])
    assert any("non-finite" in w and "b3e+15-2" in w for w in laws["warnings"])
    chinchilla = laws["chinchilla"]
    assert chinchilla["n_points"] == 13
    for name, (low, high) in chinchilla["ci95"].items():
        assert np.isfinite([low, high]).all() and low <= chinchilla["params"][name] <= high, name
    assert laws["isoflop"]["params"]["a"] == pytest.approx(0.51, abs=0.1)
    json.dumps(laws, allow_nan=False)  # valid JSON: no NaN or Infinity anywhere


def test_study_next_budget_and_extrapolation_check(study):
    _, laws = study
    nxt = laws["next_budget"]
    assert nxt["C"] == pytest.approx(1e17)
    truth = optimal_allocation(TRUE, 1e17)
    assert nxt["ci95"]["N_opt"][0] < nxt["N_opt"] < nxt["ci95"]["N_opt"][1]
    assert nxt["N_opt"] == pytest.approx(truth["N_opt"], rel=0.5)
    assert nxt["loss"] == pytest.approx(truth["loss"], rel=0.05)
    check = laws["extrapolation"]
    assert check["held_out_budget"] == 1e16 and check["n_held_out_runs"] == 5 and check["n_train_runs"] == 8
    errors = [run["chinchilla"]["rel_error"] for run in check["runs"]]
    assert check["laws"]["chinchilla"]["mean_abs_rel_error"] == pytest.approx(np.mean(np.abs(errors)))
    assert check["laws"]["chinchilla"]["mean_abs_rel_error"] < 0.05


def test_study_never_raises_for_runs_it_cannot_use():
    runs = small_study(budgets=(1e15,), sizes=4)
    runs["status"] = ["ok", "diverged", "diverged", "ok"]
    laws = fit_study(runs, bootstrap=50)
    assert laws["chinchilla"] is None and laws["isoflop"] is None and laws["extrapolation"] is None
    assert any(w.startswith("chinchilla: not fitted") for w in laws["warnings"])


def test_study_names_missing_columns():
    with pytest.raises(UserError, match="lacks column.*val_loss"):
        fit_study(small_study().drop(columns="val_loss"))


@pytest.fixture(scope="module")
def study_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "runs.csv"
    small_study(budgets=(1e15, 3e15, 1e16, 3e16), sizes=7).rename(columns={"val_loss": "loss"}).drop(
        columns="D").to_csv(path, index=False)
    return path


def test_cli_fit_writes_the_law_and_predict_reads_it(study_csv, tmp_path, capsys):
    out, png = tmp_path / "law.json", tmp_path / "law.png"
    assert main(["fit", str(study_csv), "--law", "chinchilla", "--bootstrap", "100", "--out", str(out),
                 "--plot", str(png)]) == 0
    law = json.loads(out.read_text())
    assert set(law["params"]) == set(law["ci95"]) == {"E", "A", "B", "alpha", "beta"}
    assert law["n_points"] == 28 and law["objective"] > 0  # D derived from C / 6N
    assert set(law["compute_optimal"]["ci95"]) >= {"a", "b"}
    assert imread(png).shape[:2] == (600, 660)
    capsys.readouterr()
    assert main(["predict", str(out), "--N", "1e8", "--D", "2e9"]) == 0
    printed = capsys.readouterr().out
    p = law["params"]
    expected = p["E"] + p["A"] / 1e8 ** p["alpha"] + p["B"] / 2e9 ** p["beta"]
    assert printed.startswith(f"loss {expected:.5g}  95% confidence interval [")
    conf = [float(v) for v in printed.split("confidence interval [")[1].split("]")[0].split(", ")]
    pred = [float(v) for v in printed.split("prediction interval [")[1].split("]")[0].split(", ")]
    assert pred[0] <= conf[0] < expected < conf[1] <= pred[1]  # every printed interval says which kind it is


def test_cli_isoflop_and_power_laws(study_csv, tmp_path):
    iso, curve = tmp_path / "iso.json", tmp_path / "curve.json"
    assert main(["fit", str(study_csv), "--law", "isoflop", "--bootstrap", "100", "--out", str(iso),
                 "--plot", str(tmp_path / "iso.png")]) == 0
    law = json.loads(iso.read_text())
    assert {"a", "b", "k_N", "k_D"} <= set(law["params"]) and len(law["budgets"]) == 4
    assert main(["fit", str(study_csv), "--law", "isoflop", "--bootstrap", "0", "--budget-col", "budget",
                 "--out", str(iso)]) == 0
    assert [b["budget"] for b in json.loads(iso.read_text())["budgets"]] == [1e15, 3e15, 1e16, 3e16]
    assert main(["fit", str(study_csv), "--law", "power", "--x", "C", "--bootstrap", "50",
                 "--out", str(curve), "--plot", str(tmp_path / "curve.png")]) == 0
    assert set(json.loads(curve.read_text())["params"]) == {"E", "A", "alpha"}
    assert imread(tmp_path / "iso.png").shape[:2] == (600, 840)


@pytest.mark.parametrize(
    ("csv", "extra", "message"),
    [
        ("N,D,loss\n1e8,1e9,3\n", ["--n-col", "params"], "missing column(s) params"),
        ("N,D,loss\n" + "1e8,1e9,3\n" * 5 + "1e8,-1e9,3\n", [], "'D' must be positive"),
        ("N,D,loss\n" + "1e8,1e9,3\n" * 50, [], "5 free parameters but only 1 distinct points"),
        ("N,D,loss\n" + "1e8,1e9,3\n" * 5 + "1e8,1e9,nan\n", [], "'loss' has a missing or non-numeric value"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_1(tmp_path, capsys, csv, extra, message):
    path = tmp_path / "bad.csv"
    path.write_text(csv)
    code = main(["fit", str(path), "--law", "chinchilla", "--out", str(tmp_path / "x.json"), *extra])
    err = capsys.readouterr().err
    assert code == 1
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_figures_are_drawn_from_the_study(study, tmp_path):
    runs, laws = study
    ok = runs[runs["status"].eq("ok") & runs["val_loss"].notna()]
    plot_isoflop_curves(ok, laws["isoflop"], tmp_path / "isoflop.png")
    plot_frontier(laws["isoflop"], laws["chinchilla"], tmp_path / "frontier.png")
    plot_fitted_vs_observed(ok, laws["chinchilla"], tmp_path / "fitted.png")
    plot_extrapolation(ok, laws, tmp_path / "extrapolation.png")
    plot_curve(ok["C"].to_numpy(), ok["val_loss"].to_numpy(),
               {"law": "power", "variable": "C", "offset": False, "form": "L = A C^-alpha",
                "params": {"A": 50.0, "alpha": 0.1}, "bootstrap": {"samples": None}}, tmp_path / "curve.png")
    shapes = {name: imread(tmp_path / f"{name}.png").shape[:2]
              for name in ("isoflop", "frontier", "fitted", "extrapolation", "curve")}
    assert shapes == {"isoflop": (600, 840), "frontier": (540, 1320), "fitted": (600, 660),
                      "extrapolation": (600, 840), "curve": (540, 780)}
