import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest

from isoflop.config import validate_config
from isoflop.report import edge_warnings, ground_truth_lines


def test_ground_truth_converts_E_to_nats_per_byte_and_states_the_gap():
    config = validate_config({"corpus": {"stdlib": {"enabled": False}, "synthetic": {"enabled": True}}})
    # 2 bytes per token: bpb = loss * (tokens / bytes) / ln 2 = loss / (2 ln 2)
    runs = pd.DataFrame({"status": ["ok", "ok", "diverged"], "val_loss": [2.0, 2.4, None],
                         "val_bpb": [2.0 / (2 * math.log(2)), 2.4 / (2 * math.log(2)), None]})
    chinchilla = {"params": {"E": 1.9}, "ci95": {"E": [1.8, 2.0]}}
    text = "\n".join(ground_truth_lines(runs, chinchilla, config["corpus"]["synthetic"], mixed=False))
    assert "0.9170 nats per byte" in text  # the chain's exact rate
    assert "fitted E is 0.9500 nats per byte" in text and "[0.9, 1]" in text
    assert "+0.0330 nats per byte (+3.6%)" in text
    assert "mixed in" not in text


def test_no_ground_truth_without_the_synthetic_source():
    assert ground_truth_lines(pd.DataFrame(), {"params": {"E": 1.0}}, None, mixed=True) == []


def test_edge_minima_are_warned():
    laws = {"isoflop": {"budgets": [{"C": 1e12, "minimum_at_edge": False}, {"C": 3e12, "minimum_at_edge": True}]}}
    [warning] = edge_warnings(laws)
    assert "C = 3e+12" in warning and "edge" in warning


def test_report_states_each_approach_s_tokens_per_parameter_and_approach_1(study_laws):
    from isoflop.fit.frontier import tokens_per_param_curve
    from isoflop.report import APPROACH_NAMES, envelope_lines, tokens_per_param_lines

    laws = study_laws
    text = "\n".join(tokens_per_param_lines(laws))
    compute = laws["next_budget"]["C"]
    ratios = {}
    for name, label in APPROACH_NAMES.items():
        ratio, _ = tokens_per_param_curve(laws[name], [compute])
        ratios[name] = ratio[0]
        assert f"{label} {ratio[0]:.1f} [" in text, name
    assert f"imply {min(ratios.values()):.1f} to {max(ratios.values()):.1f} tokens per parameter" in text
    section = "\n".join(envelope_lines(laws["envelope"]))
    assert "### Envelope approach 1" in section and "7 model sizes" in section and "c = 6" in section
    assert envelope_lines(None) == []  # a section with nothing to say is absent


def test_a_baseline_study_gets_its_comparison_with_the_gap_and_a_figure(tmp_path):
    from test_compare import law_with

    from isoflop.report import BASELINE_FIGURE, baseline_lines

    baseline, this = tmp_path / "baseline" / "laws.json", tmp_path / "laws.json"
    baseline.parent.mkdir()
    baseline.write_text(json.dumps({"chinchilla": law_with(1.8, 1e20, seed=1)}))
    this.write_text(json.dumps({"chinchilla": law_with(1.7, 1e21, seed=2)}))
    text = "\n".join(baseline_lines(baseline.parent, this, tmp_path / "figures"))
    assert "## Against the baseline study" in text and f"`{baseline.parent}`" in text
    assert "gap B - A = -0.1 nats/token" in text and "excludes 0" in text  # E differs by 0.1, the spread is 0.02
    assert (tmp_path / "figures" / BASELINE_FIGURE).stat().st_size > 10_000


@pytest.fixture(scope="module")
def study_laws():
    from test_fit_envelope_study import ladder_study

    from isoflop.fit import fit_study

    return fit_study(ladder_study(), bootstrap=30, seed=0)


def _study(laws, train_tokens=None):
    """The report's view of a study with `laws` and, where given, a token folder of `train_tokens` (two domains)."""
    from isoflop.report import Study

    runs = pd.DataFrame({"run_id": ["r0"], "budget": [1e15], "N": [1e6], "D": [1e8], "C": [6e14]})
    curation = {"ingest": {"by_domain": {"code": {"documents": 10}, "prose": {"documents": 20}}},
                "split": {"train": {"code": {"documents": 9}, "prose": {"documents": 18}},
                          "val": {"code": {"documents": 1}, "prose": {"documents": 2}}}}
    tokens = None if train_tokens is None else {"domains": {
        "code": {"train_tokens": train_tokens // 4, "val_tokens": 100},
        "prose": {"train_tokens": train_tokens - train_tokens // 4, "val_tokens": 300}}}
    return Study(name="t", runs=runs, laws=laws, laws_path=Path("laws.json"), plan={}, curation=curation,
                 curated_dir=Path("."), figures_dir=Path("."), figures={}, tokens=tokens)


def _with_verdict(laws, approach):
    """`laws` with its backtest scores set so that the verdict picks `approach` (both laws' intervals honest)."""
    scores = {name: {**laws["backtest"][name], "mean_abs_rel_error": 0.01 if name == approach else 0.05,
                     "coverage95": 0.95} for name in ("chinchilla", "isoflop")}
    return {**laws, "backtest": {**laws["backtest"], **scores}}


@pytest.mark.parametrize("approach", ["chinchilla", "isoflop"])
def test_the_summary_recommends_what_isoflop_predict_prints_for_each_approach_the_verdict_picks(
        study_laws, approach, tmp_path, capsys):
    from isoflop.cli import main
    from isoflop.report import APPROACH_NAMES, summary_section

    laws = _with_verdict(study_laws, approach)
    path = tmp_path / "laws.json"
    path.write_text(json.dumps(laws))
    compute = laws["next_budget"]["C"]
    assert main(["predict", str(path), "--C", str(compute)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"law: {approach} (")
    predicted = {line.split("=")[0].strip(): float(line.split("=")[1].split()[0]) for line in out[2:5]}
    summary = summary_section(_study(laws))
    assert len(summary.strip().splitlines()) <= 10  # the heading, a blank line and at most 8 lines
    assert f"From {APPROACH_NAMES[approach]}, the trusted approach" in summary
    stated = {key: float(re.search(pattern, summary).group(1)) for key, pattern in
              (("N*", r"N\* = (\S+) \["), ("D*", r"D\* = (\S+) \["), ("loss", r"loss (\S+) nats/token"))}
    for key, value in stated.items():  # the same numbers, to the 4 digits the report prints
        assert value == pytest.approx(predicted[key], rel=5e-4), key
    # the figure's title and MLflow read next_budget: it follows the verdict of the laws.json the fit wrote
    trusted = study_laws["verdict"]["approach"]
    assert study_laws["next_budget"]["source"] == trusted
    assert study_laws["next_budget"]["N_opt"] == pytest.approx(study_laws[trusted]["at_target"]["N_opt"], rel=1e-9)


def test_an_allocation_beyond_one_epoch_is_warned_in_the_summary_and_the_data_section(study_laws):
    from isoflop.report import data_section, summary_section

    d_opt = study_laws["next_budget"]["D_opt"]
    short = _study(study_laws, train_tokens=int(d_opt / 3))  # the corpus holds a third of D*: 3 epochs
    summary = summary_section(short)
    assert "**Data repetition**" in summary and f"{d_opt / int(d_opt / 3):.1f} epochs" in summary
    data = data_section(short)
    assert "**Data repetition**" in data and f"| code | 10 | 10 | 9 | 1 | {int(d_opt / 3) // 4:,} | 100 |" in data
    plenty = _study(study_laws, train_tokens=int(d_opt * 100))  # every approach's D* within one epoch
    assert "repetition" not in summary_section(plenty) and "repetition" not in data_section(plenty)
    assert f"is {d_opt / int(d_opt * 100):.2f} epochs" in data_section(plenty)


def test_beyond_the_trust_horizon_the_summary_says_so(study_laws):
    from isoflop.report import summary_section

    trusted = study_laws["verdict"]["approach"]
    test = {**study_laws["lack_of_fit"][trusted], "curved": True, "trust_factor": 1.6}
    near = {**study_laws, "lack_of_fit": {**study_laws["lack_of_fit"], trusted: test}}
    assert "**Beyond the trust horizon**" in summary_section(_study(near)) and "about 1.6x" in summary_section(_study(near))
    far = {**test, "trust_factor": 40.0}
    assert "the target lies within it" in summary_section(_study({**near, "lack_of_fit": {trusted: far}}))
