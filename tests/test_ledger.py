"""The forecast ledger: a forecast made from a fitted law, the matching run lands, the forecast is scored."""

import json

import numpy as np
import pytest

from isoflop import ledger
from isoflop.cli import main
from isoflop.fit import fit_chinchilla
from isoflop.fit.predict import predict_intervals
from isoflop.plan import content_id

TRUE = (1.8, 480.0, 2100.0, 0.35, 0.37)


def chinchilla_loss(n, d):
    e, a, b, alpha, beta = TRUE
    return e + a / n**alpha + b / d**beta


def land(results, run_id, loss, status="ok"):
    folder = results / "study" / "runs" / run_id
    folder.mkdir(parents=True)
    (folder / "result.json").write_text(json.dumps({"status": status, "val_loss": loss}))


def test_a_forecast_is_scored_when_its_run_lands(tmp_path, capsys):
    rng = np.random.default_rng(0)
    n = np.repeat(np.geomspace(1e6, 1e8, 6), 4)
    d = n * np.tile([5.0, 20.0, 80.0, 320.0], 6)
    law = fit_chinchilla(n, d, chinchilla_loss(n, d) * np.exp(rng.normal(0, 0.005, len(n))), bootstrap=100)
    spec = {"N": 1e9, "D": 2e10}  # a planned run beyond the fitted sizes
    run_id = content_id("run", "tokens-id", spec)
    intervals = {level: predict_intervals(law, [spec["N"]], [spec["D"]], level=level) for level in (0.9, 0.95)}
    ledger.record_loss(tmp_path, run_id, intervals[0.9]["predicted"][0],
                       {level: (r["pred_lo"][0], r["pred_hi"][0]) for level, r in intervals.items()},
                       source="test", made_at=1.7e9)
    other = content_id("run", "tokens-id", {"N": 1e8, "D": 2e9})
    ledger.record_beats(tmp_path, run_id, other, 0.8, made_at=1.7e9)
    pending = ledger.score(ledger.read(tmp_path), ledger.landed_runs(tmp_path))
    assert ledger.summary(pending) == {"made": 2, "scored": 0, "coverage90": None, "coverage95": None,
                                       "mean_crps": None, "mean_brier": None}
    truth = chinchilla_loss(spec["N"], spec["D"])
    land(tmp_path, run_id, truth)
    land(tmp_path, other, chinchilla_loss(1e8, 2e9))
    land(tmp_path, "diverged0000", float("nan"), status="diverged")
    scored = ledger.score(ledger.read(tmp_path), ledger.landed_runs(tmp_path))
    value, call = scored
    assert value["observed"] == pytest.approx(truth) and value["inside90"] and value["inside95"]
    assert 0 <= value["crps"] < abs(np.log(truth / value["predicted"])) + 0.01
    assert call["outcome"] and call["brier"] == pytest.approx(0.04)
    stats = ledger.summary(scored)
    assert stats["scored"] == 2 and stats["coverage90"] == 1.0 and stats["mean_brier"] == pytest.approx(0.04)
    assert ledger.mlflow_metrics(scored)["forecast_coverage90"] == 1.0
    section = ledger.markdown_section(scored, figure="reliability.png")
    assert "2 forecast(s) made, 2 scored" in section and "100% inside the 90% intervals" in section
    assert f"| `{run_id}` | loss {value['predicted']:.4f} |" in section and "| yes | yes |" in section
    assert ledger.markdown_section([]) is None
    assert main(["forecasts", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"{run_id}  loss" in out and "inside 90%" in out and "right, Brier 0.040" in out

    from isoflop.plots.forecasts import plot_reliability

    plot_reliability(scored, tmp_path / "reliability.png")
    assert (tmp_path / "reliability.png").stat().st_size > 0


def test_the_crps_of_a_sharp_right_forecast_beats_a_vague_one():
    sharp = ledger.crps_lognormal(2.0, (1.98, 2.02), 2.0)
    vague = ledger.crps_lognormal(2.0, (1.5, 2.6), 2.0)
    wrong = ledger.crps_lognormal(2.0, (1.98, 2.02), 2.3)
    assert sharp < vague < wrong


def test_a_corrupt_ledger_line_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / ledger.LEDGER).write_text('{"kind": "value"}\nnot json\n')
    assert main(["forecasts", str(tmp_path)]) == 1
    assert "line 2 is not JSON" in capsys.readouterr().err


def test_isoflop_predict_records_to_the_ledger(tmp_path, capsys):
    """`isoflop predict --ledger`: a forecast per planned run, keyed by its hash, scored once it lands."""
    import pandas as pd

    rng = np.random.default_rng(1)
    n = np.repeat(np.geomspace(1e6, 1e8, 6), 4)
    d = n * np.tile([5.0, 20.0, 80.0, 320.0], 6)
    pd.DataFrame({"N": n, "D": d, "loss": chinchilla_loss(n, d) * np.exp(rng.normal(0, 0.005, len(n)))}).to_csv(
        tmp_path / "runs.csv", index=False)
    assert main(["fit", str(tmp_path / "runs.csv"), "--law", "chinchilla", "--bootstrap", "50",
                 "--out", str(tmp_path / "law.json")]) == 0
    planned = pd.DataFrame({"run_id": ["aaaa00000001", "aaaa00000002"], "N": [3e8, 1e9], "D": [6e9, 2e10]})
    planned.to_csv(tmp_path / "planned.csv", index=False)
    assert main(["predict", str(tmp_path / "law.json"), "--csv", str(tmp_path / "planned.csv"),
                 "--out", str(tmp_path / "pred.csv"), "--ledger", str(tmp_path)]) == 0
    assert main(["predict", str(tmp_path / "law.json"), "--N", "1e9", "--D", "2e10", "--ledger", str(tmp_path)]) == 1
    assert "--ledger needs --spec-hash" in capsys.readouterr().err
    land(tmp_path, "aaaa00000001", chinchilla_loss(3e8, 6e9))
    stats = ledger.summary(ledger.score(ledger.read(tmp_path), ledger.landed_runs(tmp_path)))
    assert stats["made"] == 2 and stats["scored"] == 1 and stats["coverage95"] == 1.0


def test_recording_the_same_forecasts_again_adds_nothing(tmp_path):
    entries = [ledger.loss_entry("a1b2c3d4e5f6", 2.5, {0.9: (2.4, 2.6), 0.95: (2.3, 2.7)}, source="fit")]
    assert len(ledger.record_new(tmp_path, entries, made_at=1.0)) == 1
    assert ledger.record_new(tmp_path, entries, made_at=2.0) == []  # a rerun of the same fit
    changed = [{**entries[0], "predicted": 2.51}]  # a refit that forecasts otherwise is a new forecast
    assert len(ledger.record_new(tmp_path, changed, made_at=3.0)) == 1
    assert [entry["made_at"] for entry in ledger.read(tmp_path)] == [1.0, 3.0]


def test_the_scoring_stage_reads_only_the_files_it_is_given(tmp_path):
    forecasts = [ledger.loss_entry(run_id, 2.5, {0.9: (2.4, 2.6), 0.95: (2.3, 2.7)})
                 for run_id in ("aaaaaaaaaaaa", "bbbbbbbbbbbb")]
    (tmp_path / "laws.json").write_text(json.dumps({"forecasts": forecasts}))
    land(tmp_path, "aaaaaaaaaaaa", 2.65)
    land(tmp_path, "bbbbbbbbbbbb", 2.55)  # landed, but not a declared input: pending
    out = ledger.score_stage(tmp_path / "laws.json", [tmp_path / "study/runs/aaaaaaaaaaaa/result.json"],
                             tmp_path / "scores.json")
    assert json.loads((tmp_path / "scores.json").read_text()) == out
    first, second = out["forecasts"]
    assert first["observed"] == 2.65 and not first["inside90"] and first["inside95"] and "observed" not in second
    assert out["summary"] | {"mean_crps": None} == {"made": 2, "scored": 1, "coverage90": 0.0, "coverage95": 1.0,
                                                    "mean_crps": None, "mean_brier": None}


def test_a_forecast_budget_plans_one_run_beyond_the_grid_outside_its_trunks():
    from isoflop.config import read_config_file, validate_config
    from isoflop.errors import UserError
    from isoflop.plan import make_plan

    from conftest import REPO

    config = validate_config(read_config_file(REPO / "tests" / "smoke.yaml"))
    plan = make_plan(config, "tokens-id")
    [forecast] = [run for run in plan["runs"].values() if run.get("forecast")]
    grid = [run for run in plan["runs"].values() if not run.get("forecast")]
    assert forecast["budget"] == 1.2e11 and forecast["C"] == pytest.approx(1.2e11, rel=0.05)
    assert forecast["trunk_id"] is None and all(forecast["run_id"] not in t["run_ids"] for t in plan["trunks"].values())
    # the prior's compute-optimal size: N* = sqrt(C / (k tokens_per_param)), k the smallest shape's FLOPs per
    # parameter-token (the plan's grid centres on it too), and the nearest ladder shape
    smallest = min(grid, key=lambda run: run["N"])
    n_star = (1.2e11 / (smallest["C"] / (smallest["N"] * smallest["D"]) * 20)) ** 0.5
    sizes = {run["d_model"]: run["N"] for run in grid}
    assert forecast["d_model"] == min(sizes, key=lambda d: abs(np.log(sizes[d] / n_star)))
    without = make_plan({**config, "plan": {**config["plan"], "forecast_budgets": []}}, "tokens-id")
    assert set(without["runs"]) == {run["run_id"] for run in grid}  # the grid's runs keep their ids
    config["plan"]["forecast_budgets"] = [4.0e10]
    with pytest.raises(UserError, match=r"plan.forecast_budgets\[0\]' = 4e\+10 FLOPs is not beyond"):
        make_plan(config, "tokens-id")
