"""The smoke study on a real one-node SLURM cluster (scripts/cluster/start_slurm.sh) through
`--workflow-profile workflow/profiles/slurm`: its tables equal a local run's number for number, every
training job ran as a SLURM job, and a job given a time limit shorter than its run is killed by SLURM and
resumes from its checkpoint on the retry, ending bit-identical to the uninterrupted run."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO, free_port

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
SCRIPTS = REPO / "scripts" / "cluster"
SMOKE = yaml.safe_load((REPO / "tests" / "smoke.yaml").read_text())
# checkpoints every 6 s of training: what a job killed at its time limit resumes from
CLUSTER_SMOKE = {**SMOKE, "tracking": {"enabled": False},
                 "train": {**SMOKE["train"], "checkpoint_minutes": 0.1}}
# One cosine run on the smoke study's data (same corpus, tokenizer and seq_len: the same tokens folder) that
# trains for well over SLURM's shortest time limit, one minute, on an idle core.
LONG_RUN = {**CLUSTER_SMOKE, "plan": {"budgets": [6.0e+11], "ladder": [48], "sizes_per_budget": 1},
            "train": {**CLUSTER_SMOKE["train"], "schedule": "cosine", "min_steps": 20}}
# what differs between two runs of the same spec: how long they took, and whether they were interrupted
TIMINGS = ["train_seconds", "wall_seconds", "tokens_per_second", "resumed"]
TABLES = ("runs.parquet", "laws.json")


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A fresh one-node cluster of its own (own folder and ports); the environment that reaches it."""
    state = tmp_path_factory.mktemp("slurm")
    env = {**os.environ, "ISOFLOP_SLURM_DIR": str(state), "ISOFLOP_SLURMCTLD_PORT": str(free_port()),
           "ISOFLOP_SLURMD_PORT": str(free_port()), "ISOFLOP_PROGRESS": "0"}
    started = subprocess.run([str(SCRIPTS / "start_slurm.sh")], capture_output=True, text=True, env=env, timeout=900)
    if started.returncode == 2:  # slurm or munge missing and not installable here
        pytest.skip(started.stderr.strip().splitlines()[-1])
    assert started.returncode == 0, started.stdout + started.stderr
    env["SLURM_CONF"] = str(state / "slurm.conf")
    yield env, state
    subprocess.run([str(SCRIPTS / "stop_slurm.sh")], capture_output=True, env=env, timeout=120)


def _snakemake(workdir: Path, config: dict, *extra: str, targets=TABLES, env=None) -> subprocess.CompletedProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    configfile = workdir / "study.yaml"
    configfile.write_text(yaml.safe_dump(config))
    study = f"results/{config['study']}"
    command = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--configfile", str(configfile),
               *extra, *(f"{study}/{target}" for target in targets)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900,
                          env=env or {**os.environ, "ISOFLOP_PROGRESS": "0"})
    assert done.returncode == 0, done.stderr[-5000:]
    return done


def _on_the_cluster(workdir: Path, config: dict, data_from: Path, env: dict, *extra: str, targets=TABLES):
    """The study through the slurm profile, its data stages copied from a local run (they are not what this
    tests, and on 2 cores they are most of the time)."""
    shutil.copytree(data_from / "results", workdir / "results",
                    ignore=shutil.ignore_patterns("runs", "trunks", "train", "plan.json", "runs.parquet", "laws.json"))
    return _snakemake(workdir, config, "--workflow-profile", str(REPO / "workflow" / "profiles" / "slurm"),
                      "--slurm-init-seconds-before-status-checks", "5", "--slurm-keep-successful-logs", *extra,
                      targets=targets, env=env)


@pytest.fixture(scope="module")
def local_smoke(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("local")
    _snakemake(workdir, CLUSTER_SMOKE, "--cores", str(len(os.sched_getaffinity(0))))
    return workdir


def _jobs(state: Path) -> dict[str, list[str]]:
    """SLURM job id -> the states it ended in, from slurmctld's completion log (jobcomp/filetxt): the job
    history this cluster has without slurmdbd."""
    jobs: dict[str, list[str]] = {}
    for line in (state / "log" / "jobcomp.log").read_text().splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        jobs.setdefault(fields["JobId"], []).append(fields["JobState"])
    return jobs


def _slurm_logs_naming(workdir: Path, name: str) -> dict[str, str]:
    """SLURM job id -> its log (the plugin's .snakemake/slurm_logs/<rule or group>/.../<job id>.log) for every
    job whose log names `name` (a run or trunk id)."""
    return {log.stem: log.read_text() for log in (workdir / ".snakemake" / "slurm_logs").rglob("*.log")
            if name in log.read_text()}


def _tables(workdir: Path, study: str):
    out = workdir / "results" / study
    runs = pd.read_parquet(out / "runs.parquet").drop(columns=TIMINGS, errors="ignore")
    return runs, json.loads((out / "laws.json").read_text())


@pytest.mark.cluster
def test_the_smoke_study_on_slurm_equals_the_local_run(slurm, local_smoke, tmp_path):
    env, state = slurm
    workdir = tmp_path / "cluster"
    # --cores: the most CPUs one allocation asks for, here the one node's
    _on_the_cluster(workdir, CLUSTER_SMOKE, local_smoke, env, "--cores", str(len(os.sched_getaffinity(0))))

    runs, laws = _tables(workdir, "smoke")
    local_runs, local_laws = _tables(local_smoke, "smoke")
    pd.testing.assert_frame_equal(runs, local_runs)
    assert laws == local_laws
    assert len(runs) == 9 and (runs["status"] == "ok").all()

    # every training job (each trunk's and each run's) ran inside a SLURM job that completed
    jobs = _jobs(state)
    trunks = sorted(runs["trunk_id"].dropna().unique())
    assert len(trunks) == 3
    for name in [*trunks, *runs["run_id"]]:
        ran_in = _slurm_logs_naming(workdir, name)
        assert ran_in, f"{name}: no SLURM job log names it"
        assert all(jobs.get(job_id) == ["COMPLETED"] for job_id in ran_in), (name, {j: jobs.get(j) for j in ran_in})


def _long_run(local_smoke: Path, seconds: float) -> dict:
    """LONG_RUN sized to train for about `seconds` at the speed this machine trains now (the smoke study's
    d_model-48 trunk, just measured): it must outlast SLURM's one-minute limit whether CI is idle or loaded."""
    [trunk] = [r for r in map(json.loads, map(Path.read_text, (local_smoke / "results" / "smoke" / "trunks").glob(
        "*/result.json"))) if r["spec"]["model"]["d_model"] == 48]
    seconds_per_step = trunk["train_seconds"] / trunk["steps"]
    runs = pd.read_parquet(local_smoke / "results" / "smoke" / "runs.parquet")
    flops_per_step = (runs["C"] / runs["steps"])[runs["d_model"] == 48].iloc[0]  # in the plan's convention
    budget = float(f"{flops_per_step * seconds / seconds_per_step:.3g}")
    return {**LONG_RUN, "plan": {**LONG_RUN["plan"], "budgets": [budget]}}


def _result(workdir: Path) -> dict:
    [path] = (workdir / "results" / "smoke" / "runs").glob("*/result.json")
    return json.loads(path.read_text())


@pytest.mark.cluster
def test_a_job_past_its_time_limit_resumes_from_its_checkpoint_bit_identically(slurm, local_smoke, tmp_path):
    env, state = slurm
    study = _long_run(local_smoke, seconds=100)
    reference_dir = tmp_path / "local"
    shutil.copytree(local_smoke / "results", reference_dir / "results",
                    ignore=shutil.ignore_patterns("runs", "trunks", "train", "plan.json", "runs.parquet", "laws.json"))
    _snakemake(reference_dir, study, "--cores", "1", targets=["runs.parquet"])
    reference = _result(reference_dir)
    assert reference["resumed"] == 0 and reference["train_seconds"] > 75, reference["train_seconds"]

    # SLURM's shortest limit, 1 minute: the job is killed (state TIMEOUT) and the profile's retries resubmit it
    workdir = tmp_path / "cluster"
    _on_the_cluster(workdir, study, local_smoke, env, "--cores", "1", "--set-resources", "train:runtime=1",
                    "--retries", "6", targets=["runs.parquet"])
    result = _result(workdir)
    assert result["resumed"] >= 1
    for key in ("val_loss", "val_loss_by_domain", "train_loss", "steps"):
        assert result[key] == reference[key], key
    [run_id] = [path.parent.name for path in (workdir / "results" / "smoke" / "runs").glob("*/result.json")]
    curve, reference_curve = (pd.read_parquet(d / "results" / "smoke" / "runs" / run_id / "curve.parquet")
                              for d in (workdir, reference_dir))
    assert curve["train_loss"].equals(reference_curve["train_loss"])

    # the last attempt's log: it started from a checkpoint, not from step 0
    log = (workdir / "results" / "smoke" / "logs" / "train" / f"{run_id}.log").read_text()
    [resumed_at] = map(int, re.findall(r"resumed from step (\d+) of", log))
    assert 0 < resumed_at < result["steps"]
    # and SLURM saw it: one or more jobs killed at the limit, then one that completed
    states = [_jobs(state)[job_id] for job_id in sorted(_slurm_logs_naming(workdir, run_id), key=int)]
    assert states[-1] == ["COMPLETED"] and all(s == ["TIMEOUT"] for s in states[:-1]) and len(states) >= 2, states


@pytest.mark.parametrize("device, gres", [("cuda", "gres=gpu:1"), ("cpu", None)])
def test_a_cuda_study_asks_slurm_for_one_gpu_per_training_job(tmp_path, device, gres):
    """A dry run through the profile (no cluster needed): with train.device cuda every training job carries
    gres=gpu:1, a string resource, so a group of them asks for one GPU; on the CPU none does."""
    config = {**CLUSTER_SMOKE, "train": {**CLUSTER_SMOKE["train"], "device": device}}
    done = _snakemake(tmp_path, config, "--workflow-profile", str(REPO / "workflow" / "profiles" / "slurm"), "-n")
    jobs = re.findall(r"rule (train|train_trunk):.*?resources: ([^\n]*)", done.stdout, flags=re.S)
    assert sorted(rule for rule, _ in jobs) == ["train"] * 9 + ["train_trunk"] * 3
    assert all((gres in resources.split(", ")) if gres else "gres=" not in resources for _, resources in jobs)
