"""Prediction intervals calibrated on extrapolation (`isoflop.fit.calibrate`): do they cover held-out larger
runs as often as they claim, on Gadre et al.'s released runs and on synthetic laws with known curvature?"""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import shared_file
from test_fit_overtrained import SMALL, gadre_csvs  # noqa: F401 (a fixture)

from isoflop.cli import main
from isoflop.fit import fit_curve
from isoflop.fit.backtest import calibrate
from isoflop.fit.calibrate import MAX_FOLDS, calibrated_interval, calibration
from isoflop.fit.constrained import fit_law
from isoflop.fit.predict import predict_intervals

LEVELS = (0.90, 0.95)


def gadre_models() -> pd.DataFrame:
    return pd.read_csv(shared_file("reference/mlfoundations/models.csv"))


def validation_sets(models: pd.DataFrame) -> list[str]:
    return [col for col in models.columns if col.startswith("loss_")]


def gadre_forecasts(fit_set) -> pd.DataFrame:
    """Per training dataset and validation set: the over-trained law (least squares, as the paper) fitted on
    `fit_set(runs of one dataset)`, calibrated, predicting the held-out open_lm 1B and 7B runs."""
    models = gadre_models()
    rows = []
    for dataset, runs in models.groupby("dataset"):
        train = fit_set(runs)
        held = runs[runs["model"].str.startswith("open_lm")]
        for column in validation_sets(models):
            data = {"N": train["N"].to_numpy(float), "D": train["D"].to_numpy(float),
                    "loss": train[column].to_numpy(float)}

            def refit(rows, data=data):
                return fit_law("overtrained", data["N"][rows], data["D"][rows], data["loss"][rows], objective="lsq")

            law = calibrate(refit(np.ones(len(train), dtype=bool)), data, refit)
            warned = any("too few points to calibrate" in w for w in law["warnings"])
            for level in LEVELS:
                result = predict_intervals(law, held["N"].to_numpy(float), held["D"].to_numpy(float), level=level)
                observed = held[column].to_numpy(float)
                rows.append(pd.DataFrame({
                    "dataset": dataset, "validation": column, "level": level, "observed": observed,
                    "predicted": result["predicted"], "low": result["pred_lo"], "high": result["pred_hi"],
                    "calibrated": result["calibrated"], "warned": warned}))
    table = pd.concat(rows, ignore_index=True)
    table["inside"] = (table["low"] <= table["observed"]) & (table["observed"] <= table["high"])
    table["width"] = (table["high"] - table["low"]) / table["predicted"]
    return table


@pytest.mark.slow
def test_gadre_small_runs_calibrate_the_large_runs_forecasts():
    """All M of the four small sizes, per dataset and validation set, predicting the 1.4B and 6.9B runs: 72
    forecasts per level. Uncalibrated, the same law's 90% intervals cover about half of them (issue 19)."""
    table = gadre_forecasts(lambda runs: runs[~runs["model"].str.startswith("open_lm")])
    assert len(table) == 2 * 3 * 8 * 3 and table["calibrated"].all()
    coverage = table.groupby("level")["inside"].mean()
    assert 0.85 <= coverage[0.90] <= 0.97, coverage
    assert 0.90 <= coverage[0.95] <= 0.99, coverage


def test_gadre_five_run_fit_set_carries_the_too_few_points_warning():
    """The paper's 5-run fit set: a 4-parameter law on 5 points cannot be backtested, so every forecast is in the
    explicit "too few points" state, flagged as interpolating, and none of its 95% intervals is a sliver."""
    def five_runs(runs):
        small = runs["model"].isin(SMALL) & (runs["M"] == 20)
        return runs[small | ((runs["model"] == SMALL[0]) & (runs["M"] == 320))]

    table = gadre_forecasts(five_runs)
    assert len(table) == 2 * 3 * 8 * 3
    assert (table["calibrated"] | table["warned"]).all() and not table["calibrated"].any()
    assert table.loc[table["level"] == 0.95, "width"].min() > 0.01
    # the widened prior is wide, but not uninformative: the 95% intervals span at most about +-35%
    assert table.loc[table["level"] == 0.95, "width"].max() < 0.8
    assert table.loc[table["level"] == 0.90, "inside"].mean() >= 0.85


def test_predict_level_writes_its_columns(gadre_csvs, capsys):  # noqa: F811
    folder = gadre_csvs
    assert main(["fit", str(folder / "fit.csv"), "--law", "overtrained", "--objective", "lsq",
                 "--loss-col", "loss_c4_val", "--bootstrap", "50", "--out", str(folder / "law90.json")]) == 0
    err = capsys.readouterr().err
    assert "too few points to calibrate" in err and "interpolates" in err
    law = json.loads((folder / "law90.json").read_text())
    assert law["calibration"]["n_errors"] == 0
    assert main(["predict", str(folder / "law90.json"), "--csv", str(folder / "heldout.csv"), "--level", "0.9",
                 "--loss-col", "loss_c4_val", "--out", str(folder / "pred90.csv")]) == 0
    pred = pd.read_csv(folder / "pred90.csv")
    assert {"pred_lo90", "pred_hi90", "conf_lo90", "conf_hi90", "inside_pred90", "calibrated"} <= set(pred.columns)
    assert (pred["pred_lo90"] < pred["predicted"]).all() and (pred["predicted"] < pred["pred_hi90"]).all()
    assert "90% prediction interval" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # argparse's one-line usage error
        main(["predict", str(folder / "law90.json"), "--N", "1e9", "--D", "2e10", "--level", "1.5"])
    assert "--level takes a coverage in (0, 1)" in capsys.readouterr().err


def synthetic_coverage(curvature: float, noise: float, replications: int, level: float, seed: int = 0):
    """Coverage of `level` intervals at 0.6 decades past the fitted range, for log L = 1 - 0.1 u + curvature u^2
    (u = log10 x over two decades, 9 sizes x 2 seeds, Gaussian noise on log L) fitted by a straight line in
    log-log space (a power law without offset): the truth bends away from the law beyond the data. The
    rolling-origin backtest and least squares are vectorised over the replications."""
    rng = np.random.default_rng(seed)
    u = np.repeat(np.linspace(0.0, 2.0, 9), 2)
    target = 2.6
    truth = 1.0 - 0.1 * u + curvature * u**2
    y = truth[None] + rng.normal(0.0, noise, (replications, len(u)))

    def line(rows):  # (replications, 2): intercept and slope of each replication's least-squares line
        design = np.column_stack([np.ones(rows.sum()), u[rows]])
        return np.linalg.lstsq(design, y[:, rows].T, rcond=None)[0].T

    full = line(np.ones(len(u), dtype=bool))
    residuals = y - (full[:, :1] + full[:, 1:] * u)
    base = np.sqrt((residuals**2).sum(axis=1) / (len(u) - 2))
    reach, errors = [], []
    for cutoff in np.unique(u)[1:-1][-MAX_FOLDS:]:  # the folds `calibrate` would use
        train = u <= cutoff
        fold = line(train)
        reach.append(np.broadcast_to(np.abs(u[~train] - u[train].mean()), (replications, (~train).sum())))
        errors.append(y[:, ~train] - (fold[:, :1] + fold[:, 1:] * u[~train]))
    reach, errors = np.concatenate(reach, axis=1), np.concatenate(errors, axis=1)
    new_run = 1.0 - 0.1 * target + curvature * target**2 + rng.normal(0.0, noise, replications)
    point = np.exp(full[:, 0] + full[:, 1] * target)
    inside = np.zeros(replications, dtype=bool)
    for i in range(replications):
        model = calibration(reach[i], errors[i], base[i], "x", float(u.mean()))
        low, high, calibrated = calibrated_interval(point[i : i + 1], np.array([10**target]), model, level)
        assert calibrated
        inside[i] = low[0] <= np.exp(new_run[i]) <= high[0]
    return inside.mean()


@pytest.mark.parametrize(("curvature", "noise"), [(0.005, 0.005), (0.01, 0.01), (0.02, 0.005)])
def test_synthetic_extrapolation_coverage_is_nominal(curvature, noise):
    """Known noise on log L and a known curvature beyond the fitted range, 400 replications: the 90% intervals
    cover within 0.05 of 90%."""
    assert abs(synthetic_coverage(curvature, noise, 400, 0.90) - 0.90) <= 0.05


def test_a_curve_with_no_floor_warns_and_predicts_without_numpy_warnings():
    rng = np.random.default_rng(0)
    x = np.geomspace(1e6, 1e9, 12)
    y = 50 * x**-0.2 * np.exp(rng.normal(0, 0.01, 12))
    law = fit_curve(x, y, variable="N", bootstrap=50)
    assert law["params"]["E"] < 1e-9
    assert any("E sits at its lower bound 0" in w for w in law["warnings"])
    law["bootstrap"]["samples"]["E"] = [0.0] * len(law["bootstrap"]["samples"]["E"])  # underflowed to 0
    with np.errstate(all="raise"):
        result = predict_intervals(law, N=[1e10])
    assert np.isfinite(result["pred_lo"]).all() and result["predicted"][0] == pytest.approx(50 * 1e10**-0.2, rel=0.05)
