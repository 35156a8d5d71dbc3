"""`isoflop compare`: two studies' frontiers and the gap between their compute-optimal losses, on laws whose
gap is known: Chinchilla laws equal but for E, so the gap at any budget is the difference of their E."""

import json

import numpy as np
import pytest
from matplotlib.image import imread

from isoflop.cli import main
from isoflop.compare import compare_frontiers
from isoflop.fit.laws import optimal_allocation

NAMES = ("E", "A", "B", "alpha", "beta")
SHAPE = {"A": 480.0, "B": 2100.0, "alpha": 0.35, "beta": 0.37}
SPREAD = 0.02  # each law's bootstrap sd of E, hence of its compute-optimal loss


def law_with(E: float, target: float, seed: int, resamples: int = 400) -> dict:
    """A Chinchilla law whose bootstrap fits differ only in E, normal with sd SPREAD (the shape is exact)."""
    rng = np.random.default_rng(seed)
    samples = {name: [SHAPE[name]] * resamples for name in SHAPE}
    samples["E"] = (E + rng.normal(0.0, SPREAD, resamples)).tolist()
    return {"law": "chinchilla", "params": {"E": E, **SHAPE}, "at_target": {"C": target},
            "bootstrap": {"resamples": resamples, "samples": samples}}


def test_a_known_gap_and_its_interval():
    a, b = law_with(1.8, 1e20, seed=1), law_with(1.7, 1e21, seed=2)
    result = compare_frontiers(a, b)
    assert result["C"] == 1e21  # the larger study's target: 10x its largest budget
    truth_b = optimal_allocation(np.array([1.7, *SHAPE.values()]), 1e21)["loss"]
    assert result["loss_b"][0] == pytest.approx(truth_b, rel=1e-12)
    gap, (low, high) = result["gap"]
    assert gap == pytest.approx(-0.1, abs=1e-12)
    # independent: the gap's sd is sqrt(2) SPREAD, so its 95% half-width is 1.96 sqrt(2) SPREAD = 0.055
    assert (gap - low, high - gap) == pytest.approx((0.0554, 0.0554), abs=0.006)
    assert result["excludes_zero"]
    close = compare_frontiers(a, law_with(1.79, 1e21, seed=2), budget=1e19)
    assert close["C"] == 1e19 and close["gap"][0] == pytest.approx(-0.01, abs=1e-12)
    assert close["gap"][1][0] < 0 < close["gap"][1][1] and not close["excludes_zero"]
    compute, (point, band) = close["curves"]["compute"], close["curves"]["a"]
    assert compute[-1] >= 1e19 and (band[0] <= point).all() and (point <= band[1]).all()


def test_the_command_reads_study_folders_and_draws_both_frontiers(tmp_path, capsys):
    folders = []
    for name, E, target in (("a", 1.8, 1e20), ("b", 1.7, 1e21)):
        folder = tmp_path / "results" / name
        folder.mkdir(parents=True)
        (folder / "laws.json").write_text(json.dumps({"chinchilla": law_with(E, target, seed=len(name)),
                                                      "isoflop": None}))
        folders.append(folder)
    out = tmp_path / "compare.png"
    assert main(["compare", str(folders[0]), str(folders[1] / "laws.json"), "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"A: {folders[0] / 'laws.json'}, chinchilla law (the only law fitted)"
    assert lines[2].startswith("compute-optimal loss at C = 1e+21 FLOPs: A ")
    assert lines[3].startswith("gap B - A = -0.1 nats/token, 95% confidence interval [-0.1")
    assert lines[3].endswith("it excludes 0: the studies differ at this budget")
    assert imread(out).shape[:2] == (600, 840)


def test_mistakes_are_one_line_naming_the_file(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    single = tmp_path / "law.json"
    single.write_text(json.dumps(law_with(1.8, 1e20, seed=0)))
    assert main(["compare", str(empty), str(single)]) == 1
    assert capsys.readouterr().err == f"isoflop compare: error: {empty / 'laws.json'}: no such file\n"
    assert main(["compare", str(single), str(single)]) == 1
    assert capsys.readouterr().err == (f"isoflop compare: error: {single}: not a study's laws.json "
                                       "(no 'chinchilla' or 'isoflop' key)\n")


def law_scaled(coef_a: float, target: float, seed: int, spread: float = 0.0, resamples: int = 400) -> dict:
    """A Chinchilla law with N coefficient `coef_a` (the other parameters SHAPE's, E 1.8); its bootstrap fits
    differ in E only, normal with sd `spread` around the law's own E."""
    rng = np.random.default_rng(seed)
    params = {"E": 1.8, **SHAPE, "A": coef_a}
    samples = {name: [params[name]] * resamples for name in params}
    samples["E"] = (1.8 + rng.normal(0.0, spread, resamples)).tolist()
    return {"law": "chinchilla", "params": params, "at_target": {"C": target},
            "bootstrap": {"resamples": resamples, "samples": samples}}


def test_the_compute_multiplier_of_equal_exponent_laws_is_the_closed_form():
    """Equal exponents and E: the frontiers are E + K C^-gamma (gamma = alpha beta / (alpha + beta)), so A
    reaches B's loss at k = ((L_A - E) / (L_B - E))^(1 / gamma) times the budget."""
    from isoflop.compare import compute_multiplier

    a, b = law_scaled(480.0, 1e21, seed=1, spread=0.001), law_scaled(300.0, 1e21, seed=2, spread=0.001)
    gamma = SHAPE["alpha"] * SHAPE["beta"] / (SHAPE["alpha"] + SHAPE["beta"])
    for budget in (1e19, 1e21, 1e23):
        losses = [optimal_allocation(np.array([law["params"][n] for n in NAMES]), budget)["loss"] for law in (a, b)]
        truth = ((losses[0] - 1.8) / (losses[1] - 1.8)) ** (1 / gamma)
        result = compute_multiplier(a, b, budget)
        assert result["k"] == pytest.approx(truth, rel=1e-6)
        assert truth > 1 and result["interval"][0] < truth < result["interval"][1]
        assert result["p_b_beats_a"] == 1.0 and result["crossovers"] == []
    same = compute_multiplier(a, a, 1e21)
    assert same["k"] == pytest.approx(1.0, rel=1e-9)


def test_the_multipliers_interval_covers_the_true_k():
    """200 synthetic study pairs: each study's estimate of E misses the truth by its own bootstrap spread
    (sd 0.01), its bootstrap fits scatter around that estimate; the 90% interval holds the true k in 85-95%."""
    from isoflop.compare import compute_multiplier

    rng = np.random.default_rng(0)
    gamma = SHAPE["alpha"] * SHAPE["beta"] / (SHAPE["alpha"] + SHAPE["beta"])
    truth_a, truth_b = (np.array([1.8, 480.0, SHAPE["B"], SHAPE["alpha"], SHAPE["beta"]]),
                        np.array([1.8, 300.0, SHAPE["B"], SHAPE["alpha"], SHAPE["beta"]]))
    losses = [optimal_allocation(t, 1e21)["loss"] for t in (truth_a, truth_b)]
    true_k = ((losses[0] - 1.8) / (losses[1] - 1.8)) ** (1 / gamma)
    hits = []
    for pair in range(200):
        laws = []
        for coef, seed in ((480.0, 2 * pair), (300.0, 2 * pair + 1)):
            law = law_scaled(coef, 1e21, seed=seed, spread=0.01, resamples=200)
            estimate = 1.8 + rng.normal(0.0, 0.01)
            law["params"]["E"] = estimate
            law["bootstrap"]["samples"]["E"] = (np.array(law["bootstrap"]["samples"]["E"]) - 1.8 + estimate).tolist()
            laws.append(law)
        low, high = compute_multiplier(*laws, 1e21)["interval"]
        hits.append(low <= true_k <= high)
    assert 0.85 <= np.mean(hits) <= 0.95, np.mean(hits)


def test_compare_prints_the_multiplier(tmp_path, capsys):
    for name, coef in (("a", 480.0), ("b", 300.0)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "laws.json").write_text(json.dumps({"chinchilla": law_scaled(coef, 1e21, seed=1,
                                                                                          spread=0.01)}))
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--level", "0.9"]) == 0
    out = capsys.readouterr().out
    assert "B is worth k = " in out and "90% interval" in out and "P(B beats A there)" in out


def test_compare_records_its_call_in_the_ledger_and_the_runs_settle_it(tmp_path, capsys):
    from isoflop import ledger

    for name, coef in (("a", 480.0), ("b", 300.0)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "laws.json").write_text(json.dumps({"chinchilla": law_scaled(coef, 1e21, seed=1,
                                                                                          spread=0.01)}))
    studies = [str(tmp_path / "a"), str(tmp_path / "b")]
    assert main(["compare", *studies, "--ledger", str(tmp_path)]) == 1
    assert "--ledger needs --runs RUN_A RUN_B" in capsys.readouterr().err
    assert main(["compare", *studies, "--ledger", str(tmp_path), "--runs", "aaaaaaaaaaaa", "bbbbbbbbbbbb"]) == 0
    printed = capsys.readouterr().out
    [call] = ledger.read(tmp_path)
    assert call["kind"] == "beats" and (call["spec_hash"], call["other_hash"]) == ("bbbbbbbbbbbb", "aaaaaaaaaaaa")
    assert f"P(B beats A there) = {call['probability']:.2f}" in printed and call["probability"] > 0.5
    assert call["k"] > 1 and 1 < call["k_interval"][0] <= call["k_interval"][1] and call["level"] == 0.9
    for run_id, loss in (("aaaaaaaaaaaa", 2.60), ("bbbbbbbbbbbb", 2.55)):  # B's run lands lower: B beat A
        (tmp_path / "runs" / run_id).mkdir(parents=True)
        (tmp_path / "runs" / run_id / "result.json").write_text(json.dumps({"status": "ok", "val_loss": loss}))
    [scored] = ledger.score(ledger.read(tmp_path), ledger.landed_runs(tmp_path))
    assert scored["outcome"] and scored["brier"] == pytest.approx((1 - call["probability"]) ** 2)


def _chinchilla_runs(E, A, B, alpha, beta, seed, noise=0.003):
    rng = np.random.default_rng(seed)
    n = np.repeat(np.geomspace(1e6, 1e8, 6), 4)
    d = n * np.tile([5.0, 20.0, 80.0, 320.0], 6)
    loss = (E + A / n**alpha + B / d**beta) * np.exp(rng.normal(0, noise, len(n)))
    return n, d, loss


@pytest.mark.slow  # ~40 s of CPU: two profiles of E, each some 25 pairs of Chinchilla fits
def test_a_shared_e_fits_comparably_where_the_floors_agree_and_not_where_they_differ(tmp_path, capsys):
    import pandas as pd

    from isoflop.compare import shared_e_fit

    a = _chinchilla_runs(1.8, 480.0, 2100.0, 0.35, 0.37, seed=0)
    b = _chinchilla_runs(1.8, 300.0, 1500.0, 0.33, 0.36, seed=1)
    same_floor = shared_e_fit([a, b])
    assert same_floor["comparable"] and same_floor["E"] == pytest.approx(1.8, abs=0.05)
    assert same_floor["objective"] >= same_floor["separate_objective"]  # one parameter fewer never fits better
    apart = shared_e_fit([a, _chinchilla_runs(2.4, 480.0, 2100.0, 0.35, 0.37, seed=1)])
    assert not apart["comparable"] and apart["statistic"] > 3.841
    assert apart["separate_E"] == [pytest.approx(1.8, abs=0.1), pytest.approx(2.4, abs=0.1)]
    # the command: study folders with their runs tables
    for name, (n, d, loss) in (("a", a), ("b", b)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "laws.json").write_text(json.dumps({"chinchilla": law_scaled(480.0, 1e21, seed=1)}))
        pd.DataFrame({"N": n, "D": d, "val_loss": loss, "status": "ok"}).to_parquet(tmp_path / name / "runs.parquet")
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--shared-e"]) == 0
    out = capsys.readouterr().out
    assert f"shared-E joint fit: E = {same_floor['E']:.4g}" in out and "it fits comparably; under it B is worth" in out
