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
