"""The schedule law (isoflop.fit.schedule): known parameters recovered from curves the law itself generates,
a held-out synthetic cooldown predicted, and the fit stage writing it to laws.json from curve files."""

import json

import numpy as np
import pandas as pd
import pytest

from isoflop.fit.schedule import annealing_areas, fit_schedule_laws, law_loss
from isoflop.train.schedule import decay_start, lr_schedule

TRUE = {"L0": 2.0, "A": 3.0, "alpha": 0.4, "C": 0.0004}
TRAIN = {"lr": 0.01, "schedule": "wsd", "warmup_steps": 20, "min_lr_frac": 0.1, "decay_frac": 0.2,
         "decay_shape": "1-sqrt"}
STEPS = (1000, 2000, 4000)  # one WSD family: three cooldowns branched from one trunk


def _family(seed: int, noise: float = 0.01, decay_factor: float = 0.999):
    """Runs table rows, per-step curves (as the trainer writes them) and train specs of one synthetic family
    whose annealing memory is `decay_factor`."""
    rng = np.random.default_rng(seed)
    rows, curves, trains = [], {}, {}
    for steps in STEPS:
        run_id = f"run{steps}"
        rates = lr_schedule(steps, **TRAIN)
        s1, s2 = annealing_areas(rates / TRAIN["lr"], TRAIN["warmup_steps"], decay_factor)
        step = np.arange(1, steps + 1)
        with np.errstate(divide="ignore"):
            clean = law_loss(TRUE, s1[step - 1], s2[step - 1])
        loss = np.where(step > 1, clean, 6.0) * np.exp(rng.normal(0, noise, steps))
        curves[run_id] = pd.DataFrame({"kind": "train", "step": step, "lr": rates, "train_loss": loss})
        trains[run_id] = TRAIN
        rows.append({"run_id": run_id, "trunk_id": "t0", "status": "ok", "val_loss": loss[-1], "steps": steps,
                     "d_model": 16, "N": 1000,
                     "branch_step": decay_start(steps, TRAIN["decay_frac"])})
    return pd.DataFrame(rows), curves, trains


def test_annealing_area_follows_the_momentum_recursion():
    rates = np.array([0.5, 1.0, 1.0, 0.6, 0.2, 0.2])
    s1, s2 = annealing_areas(rates, warmup_steps=1, decay_factor=0.5)
    assert s1 == pytest.approx([0.0, 0.5, 1.5, 2.5, 3.1, 3.3, 3.5])
    # no annealing during warmup's rise; then m = 0, 0, 0.4, 0.2 + 0.4, 0.3 on steps 1..5
    assert s2 == pytest.approx([0.0, 0.0, 0.0, 0.0, 0.4, 1.0, 1.3])


def test_known_parameters_are_recovered_and_the_held_out_cooldown_predicted():
    runs, curves, trains = _family(seed=0)
    # the memory at its true value: the other parameters' recovery (the memory's own is tested below)
    result = fit_schedule_laws(runs, curves, trains, bootstrap=50, seed=0, decay_factor=0.999)
    family = result["families"]["t0"]
    assert family["held_out"] == "run4000"
    assert family["fitted_runs"] == ["run1000", "run2000"]
    params = family["params"]
    assert params["L0"] == pytest.approx(TRUE["L0"], abs=0.15)
    assert params["A"] == pytest.approx(TRUE["A"], rel=0.3)  # traded against alpha: the fit skips the earliest steps
    assert params["alpha"] == pytest.approx(TRUE["alpha"], abs=0.07)  # about its 95% half-width
    assert params["C"] == pytest.approx(TRUE["C"], rel=0.1)
    for name, (low, high) in family["ci95"].items():
        assert low <= TRUE[name] <= high, name  # the block bootstrap's 95% intervals cover the truth
    # the held-out cooldown's final loss (1% per-step noise, averaged over its last 80 steps) within 0.5%
    assert family["final_window_steps"] == 80
    assert abs(family["rel_error"]) < 0.005
    assert family["cooldown_mean_abs_rel_error"] < 0.005
    assert family["within_tolerance"] and family["warnings"] == []
    assert result["n_within_tolerance"] == 1 and result["trusted"]


@pytest.mark.parametrize("decay_factor", [0.99, 0.999])
def test_the_annealing_memory_is_recovered_from_exact_curves(decay_factor):
    """Curves made by the law with a memory of 100 or 1000 steps: the fitted memory within 2%, the held-out
    cooldown within 0.01%. At 100 steps the paper's fixed 0.999 misses the held-out cooldown by over 1%."""
    runs, curves, trains = _family(seed=4, noise=0.0, decay_factor=decay_factor)
    law = fit_schedule_laws(runs, curves, trains, bootstrap=0)
    assert law["memory_steps"] == pytest.approx(1 / (1 - decay_factor), rel=0.02)
    assert law["max_abs_rel_error"] < 1e-4
    if decay_factor == 0.99:
        assert law["decay_factor_sensitivity"]["0.999"] > 0.01


def test_a_short_memory_is_recovered_from_noisy_curves():
    """0.3% noise per step (measured: memory 100 fitted as 88 steps; held-out error 0.003%, against 1.1% with the
    paper's 0.999). A memory longer than the fitted cooldowns (1000 steps against 200 and 400) is poorly
    determined by such curves: fitted as 593, and the held-out error is then 0.5% against 0.08% at the truth."""
    runs, curves, trains = _family(seed=4, noise=0.003, decay_factor=0.99)
    law = fit_schedule_laws(runs, curves, trains, bootstrap=0)
    assert law["memory_steps"] == pytest.approx(100, rel=0.2)
    assert law["max_abs_rel_error"] < 0.001 and law["decay_factor_sensitivity"]["0.999"] > 0.01


def test_a_law_that_cannot_be_determined_says_so():
    # a curve with no power-law decay at all: flat loss, so A and alpha are free and L0 runs to its bound
    runs, curves, trains = _family(seed=1)
    for curve in curves.values():
        curve["train_loss"] = 3.0 * np.exp(np.random.default_rng(2).normal(0, 0.01, len(curve)))
    family = fit_schedule_laws(runs, curves, trains, bootstrap=10, seed=0)["families"]["t0"]
    assert family["warnings"], family
    assert any("bound" in warning or "interval" in warning for warning in family["warnings"])


def test_a_family_with_one_cooldown_is_skipped_with_a_reason():
    runs, curves, trains = _family(seed=0)
    result = fit_schedule_laws(runs.iloc[:1], curves, trains, bootstrap=0)
    assert result["families"] == {} and result["trusted"] is False
    assert result["skipped"] == ["trunk t0: 1 finished cooldown(s), need 2 (one fitted, one held out)"]


def test_fit_stage_writes_the_schedule_law_from_curve_files(tmp_path):
    from isoflop.stages import fit_stage
    from isoflop.workflow import read_json

    runs, curves, trains = _family(seed=3)
    table = runs.assign(budget=[1e12, 2e12, 4e12], D=[1e6, 2e6, 4e6], C=[1e12, 2e12, 4e12], replicate=0,
                        lr=TRAIN["lr"], flops_convention="nonembed_head")
    table.to_parquet(tmp_path / "runs.parquet")
    paths = []
    for run_id, curve in curves.items():
        (tmp_path / "runs" / run_id).mkdir(parents=True)
        curve.to_parquet(tmp_path / "runs" / run_id / "curve.parquet")
        paths.append(tmp_path / "runs" / run_id / "curve.parquet")
    (tmp_path / "plan.json").write_text(json.dumps({"runs": {r: {"spec": {"train": t}} for r, t in trains.items()}}))
    fit_stage(tmp_path / "runs.parquet", tmp_path / "laws.json", bootstrap=10, huber_delta=1e-3, seed=0,
              lr_law=False, plan_path=tmp_path / "plan.json", curve_paths=paths)
    law = read_json(tmp_path / "laws.json")["schedule_law"]
    family = law["families"]["t0"]
    # the memory fitted (1000 steps, longer than the fitted cooldowns, is loosely determined by 1%-noise curves)
    assert family["held_out"] == "run4000" and abs(family["rel_error"]) < 0.01
    assert family["params"]["alpha"] == pytest.approx(TRUE["alpha"], abs=0.05)
    assert law["decay_factor_fitted"] and 300 < law["memory_steps"] < 3000, law["memory_steps"]


def test_report_says_plainly_whether_to_trust_the_law():
    from isoflop.report import schedule_law_lines

    runs, curves, trains = _family(seed=0)
    law = fit_schedule_laws(runs, curves, trains, bootstrap=0, decay_factor=0.999)
    text = "\n".join(schedule_law_lines({"schedule_law": law}))
    assert "predicted 1 of 1 held-out cooldowns' final loss within 1%. **Trust it**" in text
    law["families"]["t0"]["rel_error"], law["families"]["t0"]["within_tolerance"] = -0.05, False
    law.update(n_within_tolerance=0, max_abs_rel_error=0.05, trusted=False)
    text = "\n".join(schedule_law_lines({"schedule_law": law}))
    assert "**Do not trust it** to choose a schedule here: only 0 of 1 held-out cooldowns within 1% (worst 5.00%)" in text
    assert "| `t0` | 16 | `run4000` |" in text and "| -5.00% |" in text
