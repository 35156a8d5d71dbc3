import math

import numpy as np
import pandas as pd
import pytest

from isoflop.config import validate_config
from isoflop.plan import make_plan
from isoflop.stages import best_of_sweep, fit_stage
from isoflop.workflow import read_json


def _sweep_table(rng):
    """Runs of a known law with a learning-rate sweep: lr*(N, D) = 0.5 N^-0.3 D^0.1."""
    rows = []
    for budget in (1e16, 1e17, 1e18):
        for n in np.geomspace(budget ** 0.5 / 30, budget ** 0.5 / 3, 5):
            d = budget / (6 * n)
            lr_opt = 0.5 * n ** -0.3 * d ** 0.1
            base = 1.7 + 400 / n ** 0.34 + 410 / d ** 0.28
            for multiplier in (0.25, 0.5, 1.0, 2.0, 4.0):
                lr = lr_opt * multiplier * math.exp(rng.normal(0, 0.02))
                loss = base + 0.05 * math.log(lr / lr_opt) ** 2 + rng.normal(0, 0.002)
                rows.append({"run_id": f"{budget:.0e}-{n:.0f}-{multiplier}", "budget": budget, "N": n, "D": d,
                             "C": budget, "replicate": 0, "lr": lr, "status": "ok", "val_loss": loss,
                             "flops_convention": "nonembed_head"})
    return pd.DataFrame(rows)


def test_best_of_sweep_keeps_one_run_per_grid_point_and_failed_runs():
    runs = _sweep_table(np.random.default_rng(0))
    runs.loc[0, "status"] = "diverged"
    best = best_of_sweep(runs)
    assert len(best) == 15 + 1
    ok = best[best.status == "ok"]
    assert ok.groupby(["budget", "N"]).size().eq(1).all()
    expected = runs[runs.status == "ok"].groupby(["budget", "N"])["val_loss"].min()
    pd.testing.assert_series_equal(ok.set_index(["budget", "N"])["val_loss"].sort_index(), expected.sort_index())
    assert "diverged" in set(best["status"])


def test_fit_stage_adds_the_lr_law_from_a_sweep(tmp_path):
    runs = _sweep_table(np.random.default_rng(1))
    runs.to_parquet(tmp_path / "runs.parquet")
    fit_stage(tmp_path / "runs.parquet", tmp_path / "laws.json", bootstrap=100, huber_delta=1e-3, seed=0, lr_law=True)
    laws = read_json(tmp_path / "laws.json")
    assert laws["settings"] == {"bootstrap": 100, "huber_delta": 1e-3, "seed": 0}
    assert laws["flops_convention"] == "nonembed_head"
    law = laws["lr_law"]["params"]
    assert law["p"] == pytest.approx(-0.3, abs=0.05)
    assert law["q"] == pytest.approx(0.1, abs=0.05)
    lo, hi = laws["lr_law"]["ci95"]["p"]
    assert lo < -0.3 < hi
    # the IsoFLOP fit saw one (tuned) run per grid point
    assert laws["isoflop"]["n_points"] == 15


def test_lr_multipliers_multiply_the_grid():
    base = make_plan(validate_config({}), "tok")["runs"]
    sweep = make_plan(validate_config({"train": {"lr_multipliers": [0.5, 1.0, 2.0]}}), "tok")["runs"]
    assert len(sweep) == 3 * len(base)
    assert set(base) <= set(sweep)  # the x1 runs are the default study's runs
    lrs = sorted(r["spec"]["train"]["lr"] for r in sweep.values() if r["d_model"] == 32 and r["budget"] == 3e11)
    assert lrs == pytest.approx([0.01, 0.02, 0.04])
