"""Whole-workflow SIGKILL at every stage, each time resumed with the README's command, ends with the same
tables as an uninterrupted run and no duplicate in MLflow; a second `isoflop study` (what `make study` runs)
while one is live is refused with one line; `--report` needs no `--cores`.

One chain of kills over a tiny study (2 shapes x 2 budgets, WSD: 2 trunks with 2 branches each, 4 curation
shards, tracking to the SQLite store): start, wait for a point in the real state of the study folder, kill the
process group, start again. Each kill leaves Snakemake's own lock behind, which the next start must clear.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO
from faults_study import assert_same_tables, job_environment, mlflow_view, run, snakemake_command, study_command

pytestmark = [pytest.mark.faults, pytest.mark.slow]


# (stage, a state of the study folder that shows the stage is under way), in the order the DAG reaches them
def _under_way(done_pattern: str, absent: str):
    return lambda out: any(out.glob(done_pattern)) and not any(out.glob(absent))


KILL_POINTS = [
    ("curation", _under_way("curating/*/shards/*/signatures.parquet", "curated/*")),  # a shard scanned, 3 to go
    ("tokenization", _under_way("tokens/*/tokenizer.json", "tokens/*/meta.json")),  # BPE trained, encoding
    ("a WSD trunk", _under_way("trunks/*/work/trunk/*.pt", "trunks/*/result.json")),  # a checkpoint saved
    ("a branch publish", _under_way("logs/train/*.log", "runs.parquet")),  # a branched run's train job started
    ("the fit", _under_way("logs/fit.log", "laws.json")),
    ("the report", _under_way("logs/report.log", "report.md")),
    ("the MLflow sync", _under_way("mlflow/artifacts/*/*/artifacts/result.json", "mlflow/tracked.json")),
]


def _start(command: list[str], output: Path) -> subprocess.Popen:
    # its own session: the kill takes Snakemake and every job it started, as a power loss or the OOM killer would
    with open(output, "a") as sink:
        return subprocess.Popen(command, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT, env=job_environment(),
                                start_new_session=True)


def _wait_for(point, out: Path, job: subprocess.Popen, name: str, output: Path) -> None:
    deadline = time.time() + 600
    while not point(out):
        assert job.poll() is None, f"the study ended before {name} was under way: {output.read_text()[-3000:]}"
        assert time.time() < deadline, f"{name} not under way within 10 minutes"
        time.sleep(0.05)


def test_killed_at_every_stage_resumes_to_identical_tables(faults_reference, tmp_path):
    config, reference = faults_reference
    workdir = tmp_path / "killed"
    out = workdir / "results" / "faults"
    locks = workdir / ".snakemake" / "locks"
    for name, point in KILL_POINTS:
        job = _start(study_command(workdir, config), tmp_path / "output.txt")
        _wait_for(point, out, job, name, tmp_path / "output.txt")
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()
        assert any(locks.iterdir()), f"killed during {name}: Snakemake left no lock to recover from"
    # the last resume by the README's plain Snakemake line: the Snakefile clears the stale lock itself
    resumed = run(snakemake_command(workdir, config))
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert "isoflop: removed the Snakemake lock of a run that was killed" in resumed.stderr
    assert not locks.exists() or not any(locks.iterdir())

    assert_same_tables(workdir, reference)
    killed_view, reference_view = mlflow_view(workdir), mlflow_view(reference)
    assert killed_view == reference_view
    assert killed_view["kinds"] == ["curation", "fit", "study"] + ["train"] * 4
    assert all(runs == [("FINISHED", runs[0][1])] for runs in killed_view["train"].values())
    rerun = run(study_command(workdir, config))
    assert rerun.returncode == 0 and "Nothing to be done" in rerun.stdout + rerun.stderr


def test_a_second_study_is_refused_while_one_is_live(faults_reference, tmp_path):
    config, _ = faults_reference
    workdir = tmp_path / "live"
    locks = workdir / ".snakemake" / "locks"
    job = _start(study_command(workdir, config), tmp_path / "output.txt")
    try:
        _wait_for(lambda out: locks.is_dir() and any(locks.iterdir()), workdir, job, "the first run",
                  tmp_path / "output.txt")
        second = run(study_command(workdir, config))
        assert second.returncode == 1, second.stderr[-3000:]
        assert second.stderr.splitlines() == [
            f"isoflop study: error: another run of this workflow (pid {job.pid}) is live in {workdir.resolve()}: "
            "wait for it to end or stop it, then run this again"]
        dry = run(snakemake_command(workdir, config, "--dry-run"))  # the plain line leaves the live lock alone
        assert f"isoflop: another run of this workflow (pid {job.pid}) is live in {workdir.resolve()}" in dry.stderr
        assert job.poll() is None and any(locks.iterdir())
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()


def test_unlock_dag_lint_and_report_need_no_cores(faults_reference):
    """`--report` needs a finished study, so it is checked here; `--unlock`, `--dag` and `--lint` also run in
    the default suite (tests/test_workflow_faults.py)."""
    config, reference = faults_reference
    for flags in (["--unlock"], ["--dag"], ["--lint"], ["--report", "report.html"]):
        done = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d",
                               str(reference), "--configfile", str(config), *flags],
                              capture_output=True, text=True, env=job_environment(), timeout=600)
        assert done.returncode == 0, (flags, done.stderr[-3000:])
    html = (reference / "report.html").read_text()
    assert "runs.parquet" in html and "laws.json" in html
