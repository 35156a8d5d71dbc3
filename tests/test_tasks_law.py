"""Task laws: the OLMo ladder's chained forecast of a 13B model's task accuracy (Bhagia et al. 2024)
reproduced from its 16 published ladder runs, the sigmoid and the runs-table source on known truths."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import shared_file

from isoflop.cli import main
from isoflop.task_laws.ladder import LADDER_TASKS, read_ladder, read_runs_table, task_column
from isoflop.task_laws.law import (
    fit_sigmoid,
    fit_task_laws,
    moving_average,
    predict_task_laws,
    sigmoid,
)

TARGET_N, TARGET_D = 13202396160, 5000088518656
# a known sigmoid: chance (0.25) at high bpb, 1 at bpb 0, as the fit's helper point assumes
TRUTH = np.array([-0.75, 1.1, 6.0, 1.0])
COLUMNS = ["task", "predicted", "lo90", "hi90", "lo95", "hi95",
           "bpb_predicted", "bpb_lo90", "bpb_hi90", "bpb_lo95", "bpb_hi95"]


def published():
    return pd.read_csv(shared_file("reference/olmo-ladder/published_13B-5T_chained.csv")).set_index("Task")


def test_chained_forecast_reproduces_the_published_13b_predictions():
    reference = published()
    ladder = read_ladder(shared_file("reference/olmo-ladder/ladder.json"))
    assert sorted(ladder.tasks) == sorted(reference.index) == sorted(LADDER_TASKS)
    assert len(ladder.train) == 16 and [run.name for run in ladder.targets] == ["13B-5T"]
    laws = fit_task_laws(ladder, bootstrap=0)
    table = predict_task_laws(laws, TARGET_N, TARGET_D).set_index("task")
    gap = (table["predicted"] - reference["Pred"]).abs()
    assert (gap < 0.015).all(), gap
    assert gap.max() < 1e-3  # in fact the same optimum as the paper's fits, not merely close
    # the target's observed values, as LAW.json records them, are the published "Actual" column
    actual = pd.Series(laws["targets"][0]["accuracy"])
    assert np.allclose(actual[reference.index], reference["Actual"], atol=1e-9)


@pytest.mark.slow
def test_cli_forecast_and_how_often_its_intervals_cover_the_13b_model(tmp_path, capsys):
    """`isoflop tasks fit --ladder` then `predict`, as the issue runs them. 200 bootstrap resamples of the
    runs: 7 of the 8 actual values fall in the 90% interval and 7 in the 95%; ARC-Easy (actual 0.872, the
    laws say 0.772) lies above both, the miss the paper reports as its largest with ARC-Challenge."""
    ladder = shared_file("reference/olmo-ladder/ladder.json")
    law, pred = tmp_path / "law.json", tmp_path / "pred.csv"
    assert main(["tasks", "fit", "--ladder", str(ladder), "--out", str(law)]) == 0
    assert main(["tasks", "predict", str(law), "--N", str(TARGET_N), "--D", str(TARGET_D), "--out", str(pred)]) == 0
    table = pd.read_csv(pred)
    assert list(table.columns) == COLUMNS
    table = table.set_index("task")
    reference = published()
    assert ((table["predicted"] - reference["Pred"]).abs() < 0.015).all()
    assert ((table.lo95 <= table.lo90) & (table.lo90 < table.predicted) & (table.predicted < table.hi90)
            & (table.hi90 <= table.hi95)).all()
    assert ((table.bpb_lo95 <= table.bpb_lo90) & (table.bpb_lo90 < table.bpb_predicted)
            & (table.bpb_predicted < table.bpb_hi90) & (table.bpb_hi90 <= table.bpb_hi95)).all()
    actual = reference.loc[table.index, "Actual"]
    inside90 = (table.lo90 <= actual) & (actual <= table.hi90)
    inside95 = (table.lo95 <= actual) & (actual <= table.hi95)
    assert (int(inside90.sum()), int(inside95.sum())) == (7, 7)
    assert list(table.index[~inside95]) == ["arc_easy_test_5shot"]
    assert "arc_easy_test_5shot" in capsys.readouterr().out


def test_sigmoid_fit_recovers_known_parameters():
    rng = np.random.default_rng(0)
    truth = TRUTH
    bpb = rng.uniform(0.6, 1.8, 400)
    accuracy = sigmoid(bpb, truth) + rng.normal(0, 0.005, bpb.size)
    fitted = fit_sigmoid(bpb, accuracy, chance=0.25)
    assert np.allclose(fitted, truth, rtol=0.05, atol=0.02), fitted


def test_moving_average_is_trailing_and_averages_what_there_is_at_the_start():
    assert np.allclose(moving_average(np.array([1.0, 3, 5, 7, 9, 11]), 3), [1, 2, 3, 5, 7, 9])


def synthetic_runs(path, rng):
    """A study's runs table whose task columns follow a known chained law: bpb = 0.5 + 30/N^0.3 + 40/D^0.3,
    accuracy = sigmoid(bpb) with TRUTH."""
    sizes = np.geomspace(1e6, 3e8, 6)
    rows = []
    for n in sizes:
        for tokens_per_param in (5, 10, 20, 40, 80):
            d = tokens_per_param * n
            bpb = (0.5 + 30 / n**0.3 + 40 / d**0.3) * np.exp(rng.normal(0, 0.002))
            acc = sigmoid(bpb, TRUTH) + rng.normal(0, 0.003)
            rows.append({"run_id": f"r{len(rows)}", "N": n, "D": d, "status": "ok",
                         task_column("arc_easy", "bpb"): bpb, task_column("arc_easy", "acc"): acc})
    rows.append({**rows[0], "run_id": "diverged", "status": "diverged"})
    pd.DataFrame(rows).to_parquet(path)


def test_runs_table_source_forecasts_a_known_law(tmp_path):
    runs = tmp_path / "runs.parquet"
    synthetic_runs(runs, np.random.default_rng(1))
    ladder = read_runs_table(runs)
    assert ladder.tasks == ["arc_easy"] and len(ladder.train) == 30  # the diverged run is left out
    law, pred = tmp_path / "law.json", tmp_path / "pred.csv"
    assert main(["tasks", "fit", "--runs", str(runs), "--bootstrap", "20", "--out", str(law)]) == 0
    n, d = 3e9, 6e10  # 10x the largest size
    assert main(["tasks", "predict", str(law), "--N", str(n), "--D", str(d), "--out", str(pred)]) == 0
    row = pd.read_csv(pred).iloc[0]
    true_bpb = 0.5 + 30 / n**0.3 + 40 / d**0.3
    assert row.bpb_predicted == pytest.approx(true_bpb, rel=0.02)
    assert row.predicted == pytest.approx(sigmoid(true_bpb, TRUTH), abs=0.01)
    assert row.lo95 < row.predicted < row.hi95


def test_mistakes_are_one_line_errors(tmp_path, capsys):
    assert main(["tasks", "fit", "--ladder", str(tmp_path / "none.json"), "--out", str(tmp_path / "x.json")]) == 1
    assert "ladder file" in capsys.readouterr().err
    runs = tmp_path / "runs.parquet"
    pd.DataFrame({"N": [1.0], "D": [2.0], "val_loss": [3.0]}).to_parquet(runs)
    assert main(["tasks", "fit", "--runs", str(runs), "--out", str(tmp_path / "x.json")]) == 1
    assert "task_<task>_bpb" in capsys.readouterr().err
    (tmp_path / "law.json").write_text('{"law": "chinchilla"}')
    assert main(["tasks", "predict", str(tmp_path / "law.json"), "--N", "1e9", "--D", "1e10",
                 "--out", str(tmp_path / "p.csv")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "isoflop tasks fit" in err


def test_backtest_forecasts_the_largest_size_from_the_smaller_ones(tmp_path):
    from isoflop.task_laws.law import backtest_largest_size

    runs = tmp_path / "runs.parquet"
    synthetic_runs(runs, np.random.default_rng(1))
    done = backtest_largest_size(read_runs_table(runs), bootstrap=20)
    assert done["held_out_N"] == pytest.approx(3e8) and done["n_fit_runs"] == 25 and done["n_predictions"] == 5
    assert done["mean_abs_error"] < 0.005  # the truth is the law's own form (measured 0.0013); noise is 0.003
    assert done["inside95"] >= done["inside90"] >= 4  # measured: all 5 in both
    # the direct form (-log accuracy as a power law in compute per tokens-per-parameter group) forecasts the same
    # five runs from the five smaller sizes of each group; its law is not the truth's form, so it ranks second
    assert done["direct"]["n_predictions"] == 5
    assert done["ranking"] == ["chained", "direct"]
