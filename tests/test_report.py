import json
import math

import pandas as pd

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


def test_report_states_each_approach_s_tokens_per_parameter_and_approach_1():
    from isoflop.fit import fit_study
    from isoflop.fit.frontier import tokens_per_param_curve
    from isoflop.report import APPROACH_NAMES, envelope_lines, tokens_per_param_lines
    from test_fit_envelope_study import ladder_study

    laws = fit_study(ladder_study(), bootstrap=30, seed=0)
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
    assert "Not fitted" in "\n".join(envelope_lines(None))


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
