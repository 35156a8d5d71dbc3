"""The smoke study end to end through Snakemake: outputs, no-op rerun, single-run retrain, config errors."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


def snakemake(workdir: Path, *args: str, configfile: Path = REPO / "tests" / "smoke.yaml"):
    command = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--configfile", str(configfile),
               "--cores", "2", "--rerun-incomplete", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "ISOFLOP_PROGRESS": "0"})


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("smoke")
    done = snakemake(workdir)
    assert done.returncode == 0, done.stderr[-4000:]
    return workdir, workdir / "results" / "smoke"


def _mlflow_runs(study_dir: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{study_dir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("smoke")
    return client.search_runs([experiment.experiment_id], max_results=1000)


def test_outputs_contract(study):
    _, out = study
    runs = pd.read_parquet(out / "runs.parquet")
    assert len(runs) == 9 and runs["run_id"].is_unique
    for column in ["run_id", "d_model", "N", "N_total", "N_nonembed", "N_nonembed_head", "D", "C", "seed",
                   "status", "val_loss", "val_loss_code", "val_loss_docs", "val_loss_tests", "val_bpb"]:
        assert column in runs, column
    assert (runs["status"] == "ok").all()
    assert runs["val_loss"].between(1.0, 6.0).all()
    # the achieved compute matches the planned budget within one step's worth of tokens
    assert ((runs["C"] / runs["budget"]) - 1).abs().max() < 0.05
    laws = json.loads((out / "laws.json").read_text())
    chin = laws["chinchilla"]
    assert set(chin["params"]) == {"E", "A", "B", "alpha", "beta"}
    assert all(lo <= chin["params"][k] <= hi for k, (lo, hi) in chin["ci95"].items())
    assert laws["extrapolation"]["held_out_budget"] == runs["budget"].max()
    assert laws["flops_convention"] == "nonembed_head_attention"
    report = (out / "report.md").read_text()
    assert "## Fitted laws" in report and "next 10x budget" in report and "## Extrapolation check" in report
    # the schedule law: one per WSD family, each predicting its longest cooldown, with a plain verdict
    schedule = laws["schedule_law"]
    branched = runs[runs["trunk_id"].notna()]
    assert set(schedule["families"]) == set(branched["trunk_id"])
    for trunk_id, family in schedule["families"].items():
        members = branched[branched["trunk_id"] == trunk_id]
        assert family["held_out"] == members.loc[members["steps"].idxmax(), "run_id"]
        assert len(family["fitted_runs"]) == len(members) - 1
        assert family["predicted_final"] == pytest.approx(family["observed_final"] * (1 + family["rel_error"]))
    assert "## Schedule law: held-out WSD cooldowns" in report
    assert ("**Trust it**" if schedule["trusted"] else "**Do not trust it**") in report
    figures = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert "loss_curves.png" in figures and "fitted_vs_observed.png" in figures
    for name in figures:
        assert f"figures/{name}" in report
        assert (out / "figures" / name).stat().st_size > 10_000


def test_mlflow_holds_one_run_per_training_run_plus_the_fit_and_curation(study):
    _, out = study
    runs = _mlflow_runs(out)
    kinds = sorted(r.data.tags.get("isoflop.kind") for r in runs)
    assert kinds == ["curation", "fit", "study"] + ["train"] * 10  # 9 grid runs and the forecast run
    [study] = [r for r in runs if r.data.tags["isoflop.kind"] == "study"]
    assert all(r.data.tags["mlflow.parentRunId"] == study.info.run_id for r in runs if r is not study)
    train = [r for r in runs if r.data.tags["isoflop.kind"] == "train"]
    table = pd.read_parquet(out / "runs.parquet")
    forecast = {run_id for run_id, run in json.loads((out / "plan.json").read_text())["runs"].items()
                if run.get("forecast")}
    assert len(forecast) == 1 and {r.data.tags["isoflop.run_id"] for r in train} == {*table["run_id"], *forecast}
    one = train[0]
    for tag in ["isoflop.study", "isoflop.data_fingerprint", "mlflow.source.git.commit", "torch.version",
                "torch.threads"]:
        assert one.data.tags.get(tag), tag
    for param in ["N", "N_total", "N_nonembed", "N_nonembed_head", "D", "C", "train.lr", "model.d_model"]:
        assert param in one.data.params, param
    for metric in ["final.val_loss", "final.val_loss.code", "final.tokens_per_second", "train_loss"]:
        assert metric in one.data.metrics, metric


def test_rerun_does_nothing_and_a_deleted_run_alone_is_rebuilt(study):
    workdir, out = study
    again = snakemake(workdir)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    table = pd.read_parquet(out / "runs.parquet")
    branched = table[table["trunk_id"].notna()]
    # a trunk's folder gone: its job trains the trunk and its branches again, and their jobs republish them
    trunk_id = branched["trunk_id"].iloc[0]
    (out / "trunks" / trunk_id / "result.json").unlink()
    dry = snakemake(workdir, "-n")
    assert planned_jobs(dry.stdout) == {"train_trunk": 1, "train": int((table["trunk_id"] == trunk_id).sum()),
                                        "runs_table": 1, "fit": 1, "score_forecasts": 1, "report": 1,
                                        "track_study": 1, "all": 1}
    redo = snakemake(workdir)
    assert redo.returncode == 0, redo.stderr[-3000:]
    pd.testing.assert_frame_equal(pd.read_parquet(out / "runs.parquet").drop(columns=_TIMINGS),
                                  table.drop(columns=_TIMINGS))  # retrained bit-identically
    # one run's result gone: that run alone is rebuilt (a branched run is republished from its trunk's job)
    victim = branched["run_id"].iloc[-1]
    (out / "runs" / victim / "result.json").unlink()
    dry = snakemake(workdir, "-n")
    assert planned_jobs(dry.stdout)["train"] == 1 and "train_trunk" not in planned_jobs(dry.stdout), dry.stdout[-3000:]
    redo = snakemake(workdir)
    assert redo.returncode == 0, redo.stderr[-3000:]
    assert (out / "runs" / victim / "result.json").exists()
    runs = _mlflow_runs(out)
    assert sorted(r.data.tags.get("isoflop.kind") for r in runs) == ["curation", "fit", "study"] + ["train"] * 10


_TIMINGS = ["train_seconds", "wall_seconds", "tokens_per_second"]


def test_the_study_forecasts_its_forecast_run_before_it_trains_and_scores_it(study):
    """plan.forecast_budgets: the fit (which never reads the forecast run) forecasts its loss, the run trains
    after that, the forecast is scored, and the report and MLflow show it; the refits of the rerun test above
    recorded nothing twice."""
    from isoflop import ledger

    _, out = study
    plan = json.loads((out / "plan.json").read_text())
    [run_id] = [run_id for run_id, run in plan["runs"].items() if run.get("forecast")]
    assert run_id not in set(pd.read_parquet(out / "runs.parquet")["run_id"])  # never fitted
    [forecast] = json.loads((out / "laws.json").read_text())["forecasts"]
    assert forecast["spec_hash"] == run_id and forecast["budget"] == 1.2e11
    (low90, high90), (low95, high95) = forecast["intervals"]["0.9"], forecast["intervals"]["0.95"]
    assert low95 <= low90 < forecast["predicted"] < high90 <= high95
    result = out / "runs" / run_id / "result.json"
    [entry] = ledger.read(out)  # one line, however often the fit ran
    assert entry["made_at"] < result.stat().st_mtime  # forecast, then trained
    observed = json.loads(result.read_text())["val_loss"]
    scores = json.loads((out / "forecast_scores.json").read_text())
    [scored] = scores["forecasts"]
    assert scored["observed"] == observed and scored["inside90"] == (low90 <= observed <= high90)
    assert scores["summary"]["made"] == scores["summary"]["scored"] == 1 and scored["crps"] >= 0
    report = (out / "report.md").read_text()
    assert "## Forecast ledger" in report and f"| `{run_id}` |" in report and "figures/reliability.png" in report
    assert (out / "figures" / "reliability.png").stat().st_size > 10_000
    [fit] = [r for r in _mlflow_runs(out) if r.data.tags["isoflop.kind"] == "fit"]
    assert fit.data.metrics["forecast_scored"] == 1.0
    assert fit.data.metrics["forecast_coverage90"] == float(scored["inside90"])


def planned_jobs(dry_run_stdout: str) -> dict[str, int]:
    """Rule -> job count from a dry run's first "Job stats" table (empty when nothing is to be done)."""
    if "Job stats:" not in dry_run_stdout:
        return {}
    table = dry_run_stdout.split("Job stats:")[1].split("\n\n")[0]
    rows = [line.split() for line in table.splitlines()[3:]]
    return {row[0]: int(row[1]) for row in rows if len(row) == 2 and row[0] != "total"}


def _smoke_with(tmp_path: Path, section: str, key: str, value) -> Path:
    config = yaml.safe_load((REPO / "tests" / "smoke.yaml").read_text())
    config.setdefault(section, {})[key] = value
    path = tmp_path / f"{section}.{key}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


TAIL = {"fit": 1, "score_forecasts": 1, "report": 1, "track_study": 1, "all": 1}  # a refit rescores, never retrains


@pytest.mark.parametrize(
    "section, key, value, expected",
    [
        ("fit", "bootstrap", 60, TAIL),
        ("fit", "huber_delta", 2e-3, TAIL),
        # the convention changes which N and C the plan's records, the runs table and the laws use, never a run
        ("plan", "flops_convention", "nonembed_head", {"plan": 1, "runs_table": 1, **TAIL}),
        ("tracking", "experiment", "another-view", {}),  # tracking is a view: nothing reruns
    ],
)
def test_a_changed_setting_reruns_exactly_what_depends_on_it(study, tmp_path, section, key, value, expected):
    workdir, _ = study
    dry = snakemake(workdir, "-n", configfile=_smoke_with(tmp_path, section, key, value))
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert planned_jobs(dry.stdout) == expected, dry.stdout[-3000:]


def test_a_changed_fit_setting_refits_without_retraining(study, tmp_path):
    workdir, out = study
    copy = tmp_path / "copy"
    shutil.copytree(workdir, copy, symlinks=True)
    before = pd.read_parquet(out / "runs.parquet")
    done = snakemake(copy, configfile=_smoke_with(tmp_path, "fit", "bootstrap", 60))
    assert done.returncode == 0, done.stderr[-3000:]
    laws = json.loads((copy / "results" / "smoke" / "laws.json").read_text())
    assert laws["settings"]["bootstrap"] == 60
    assert json.loads((out / "laws.json").read_text())["settings"]["bootstrap"] == 50
    pd.testing.assert_frame_equal(pd.read_parquet(copy / "results" / "smoke" / "runs.parquet"), before)


def test_a_named_baseline_adds_the_comparison_to_the_report_alone(study, tmp_path):
    workdir, out = study
    copy = tmp_path / "copy"
    shutil.copytree(workdir, copy, symlinks=True)
    config = tmp_path / "with-baseline.yaml"
    config.write_text(yaml.safe_dump({**yaml.safe_load((REPO / "tests" / "smoke.yaml").read_text()),
                                      "baseline": str(out)}))
    dry = snakemake(copy, "-n", configfile=config)
    assert planned_jobs(dry.stdout) == {"report": 1, "track_study": 1, "all": 1}, dry.stdout[-3000:]
    done = snakemake(copy, configfile=config)
    assert done.returncode == 0, done.stderr[-3000:]
    report = (copy / "results" / "smoke" / "report.md").read_text()
    assert "## Against the baseline study" in report and f"`{out / 'laws.json'}`" in report
    assert "gap B - A = +0 nats/token" in report and "includes 0" in report  # the same laws: no gap
    assert (copy / "results" / "smoke" / "figures" / "baseline_comparison.png").exists()


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("plan:\n  budgetz: [1.0e+12]\n", "unknown config key 'budgetz' under 'plan'"),
        ("plan:\n  budgets: [-1.0e+12, 1.0e+12]\n", "plan.budgets[0]"),
        ("plan:\n  budgets: [1.0e+5, 1.0e+12]\n", "plan.budgets[0]' = 1e+05 FLOPs is too small"),
        ("plan:\n  forecast_budgets: [1.0e+10]\n", "plan.forecast_budgets[0]' = 1e+10 FLOPs is not beyond"),
    ],
)
def test_invalid_config_stops_before_any_work(tmp_path, override, fragment):
    merged = yaml.safe_load((REPO / "tests" / "smoke.yaml").read_text())
    merged["plan"].update(yaml.safe_load(override)["plan"])
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(merged))
    done = snakemake(tmp_path, configfile=bad)
    assert done.returncode != 0
    assert fragment in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "results").exists()
