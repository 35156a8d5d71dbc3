"""The smoke study on a real one-node SLURM cluster (scripts/cluster/start_slurm.sh) through
`--workflow-profile workflow/profiles/slurm`: its tables equal a local run's number for number, every
training job ran as a SLURM job, and a job whose time limit passes once it has saved a checkpoint is killed by
SLURM and resumes from that checkpoint on the retry, ending bit-identical to the uninterrupted run.

Every Snakemake a test starts runs in a process group of its own, stopped when the test ends however it ends
(`stop_what_the_test_started`); the cluster stops with its fixture; conftest checks that nothing is left."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
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
STARTED: list[subprocess.Popen] = []  # every Snakemake `_start` ran, stopped by `stop_what_the_test_started`


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
    try:
        yield env, state
    finally:  # on a failure or an interrupt too: its daemons are detached, nothing else would stop them
        subprocess.run([str(SCRIPTS / "stop_slurm.sh")], capture_output=True, env=env, timeout=120)


@pytest.fixture(autouse=True)
def stop_what_the_test_started():
    """Stop every Snakemake the test started (and its jobs: each runs in its own process group) when the test
    ends, failed or interrupted included: a failed assertion would otherwise leave it running for its study."""
    yield
    while STARTED:
        job = STARTED.pop()
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGTERM)
            try:
                job.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(job.pid, signal.SIGKILL)
                job.wait()


def _start(workdir: Path, config: dict, *extra: str, targets=TABLES, env=None) -> subprocess.Popen:
    """Snakemake on `config` in `workdir`, in the background; its output goes to workdir/snakemake.log."""
    workdir.mkdir(parents=True, exist_ok=True)
    configfile = workdir / "study.yaml"
    configfile.write_text(yaml.safe_dump(config))
    study = f"results/{config['study']}"
    # targets first: options such as --configfile and --set-resources take every word after them
    command = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir), *(f"{study}/{t}" for t in targets),
               "--configfile", str(configfile), *extra]
    with open(workdir / "snakemake.log", "w") as log:
        job = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                               env=env or {**os.environ, "ISOFLOP_PROGRESS": "0"})
    STARTED.append(job)
    return job


def _finish(job: subprocess.Popen) -> str:
    """Wait for a `_start`ed Snakemake; its output, once it succeeded."""
    returncode = job.wait(timeout=900)
    output = (Path(job.args[job.args.index("-d") + 1]) / "snakemake.log").read_text()
    assert returncode == 0, output[-5000:]
    return output


def _snakemake(*args, **kwargs) -> str:
    return _finish(_start(*args, **kwargs))


def _copy_data(data_from: Path, workdir: Path) -> None:
    """A study's data stages (corpus to tokens), copied from a local run: they are not what this tests, and
    on 2 cores they are most of the time."""
    shutil.copytree(data_from / "results", workdir / "results",
                    ignore=shutil.ignore_patterns("runs", "trunks", "train", "plan.json", "runs.parquet", "laws.json"))


def _on_the_cluster(workdir: Path, config: dict, data_from: Path, env: dict, *extra: str, targets=TABLES):
    """Start the study through the slurm profile, its data stages copied from `data_from`."""
    _copy_data(data_from, workdir)
    return _start(workdir, config, "--workflow-profile", str(REPO / "workflow" / "profiles" / "slurm"),
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


def _slurm_jobs_that_ran(workdir: Path, wildcard: str) -> list[str]:
    """The SLURM job ids, in order, whose log (the plugin's .snakemake/slurm_logs/<rule or group>/<job id>.log)
    shows the job of `wildcard` ("run_id=..." or "trunk_id=...") running in it."""
    logs = (workdir / ".snakemake" / "slurm_logs").rglob("*.log")
    return sorted((log.stem for log in logs if f"wildcards: {wildcard}\n" in log.read_text()), key=int)


def _requested_gres(job_id: str, env: dict) -> str:
    """The generic resources a SLURM job asked for, from squeue (MinJobAge keeps finished jobs there)."""
    return subprocess.run(["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%b"], capture_output=True, text=True,
                          env=env, check=True).stdout.strip()


def _tables(workdir: Path, study: str):
    out = workdir / "results" / study
    runs = pd.read_parquet(out / "runs.parquet").drop(columns=TIMINGS, errors="ignore")
    return runs, json.loads((out / "laws.json").read_text())


@pytest.mark.cluster
def test_the_smoke_study_on_slurm_equals_the_local_run(slurm, local_smoke, tmp_path):
    env, state = slurm
    workdir = tmp_path / "cluster"
    # --cores: the most CPUs one allocation asks for, here the one node's. The GPU request that
    # train.device: cuda makes (see the dry-run test below), here of a fake GPU while the runs train on the CPU
    _finish(_on_the_cluster(workdir, CLUSTER_SMOKE, local_smoke, env, "--cores", str(len(os.sched_getaffinity(0))),
                            "--set-resources", "train:gres='gpu:1'", "train_trunk:gres='gpu:1'"))

    runs, laws = _tables(workdir, "smoke")
    local_runs, local_laws = _tables(local_smoke, "smoke")
    pd.testing.assert_frame_equal(runs, local_runs)
    assert laws == local_laws
    assert len(runs) == 9 and (runs["status"] == "ok").all()

    # every training job (each trunk's and each run's) ran inside a SLURM job that completed
    jobs = _jobs(state)
    trunks = sorted(runs["trunk_id"].dropna().unique())
    assert len(trunks) == 3
    wildcards = [*(f"trunk_id={t}" for t in trunks), *(f"run_id={r}" for r in runs["run_id"])]
    for wildcard in wildcards:
        ran_in = _slurm_jobs_that_ran(workdir, wildcard)
        assert [jobs.get(job_id) for job_id in ran_in] == [["COMPLETED"]], (wildcard, ran_in)
    # runs_per_gpu: the profile's group put all 12 training jobs into one allocation that asked for one GPU
    allocations = {job_id for wildcard in wildcards for job_id in _slurm_jobs_that_ran(workdir, wildcard)}
    assert [_requested_gres(job_id, env) for job_id in allocations] == ["gres:gpu:1"]


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


def _limit_once_checkpointed(workdir: Path, job: subprocess.Popen, env: dict) -> None:
    """Wait for the run's first checkpoint, then cut its SLURM job's time limit to SLURM's shortest, one
    minute: the job has run longer or soon will, so SLURM kills it (state TIMEOUT) with a state saved,
    however long a loaded machine took to start it (a fixed one-minute limit let a loaded machine spend the
    whole minute starting up, and no attempt ever resumed)."""
    deadline = time.time() + 600
    while not any((workdir / "results" / "smoke" / "runs").glob("*/ckpt.pt")):
        assert job.poll() is None, (workdir / "snakemake.log").read_text()[-5000:]
        assert time.time() < deadline, "no checkpoint within 10 minutes"
        time.sleep(0.2)
    [job_id] = subprocess.run(["squeue", "-h", "-t", "R", "-o", "%i"], capture_output=True, text=True, env=env,
                              check=True).stdout.split()
    subprocess.run(["scontrol", "update", f"JobId={job_id}", "TimeLimit=1"], capture_output=True, text=True,
                   env=env, check=True)


@pytest.mark.cluster
def test_a_job_past_its_time_limit_resumes_from_its_checkpoint_bit_identically(slurm, local_smoke, tmp_path):
    env, state = slurm
    # at least 100 s of training left after the first checkpoint (6 s of training), for SLURM's check of time
    # limits (every 30 s) and its kill to come well before the run's end
    study = _long_run(local_smoke, seconds=150)
    # the profile's retries resubmit the job killed at its limit; meanwhile the same run trains uninterrupted
    # on the other core
    workdir, reference_dir = tmp_path / "cluster", tmp_path / "local"
    on_slurm = _on_the_cluster(workdir, study, local_smoke, env, "--cores", "1", "--set-resources",
                               "train:runtime=30", "--retries", "6", targets=["runs.parquet"])
    _copy_data(local_smoke, reference_dir)
    local = _start(reference_dir, study, "--cores", "1", targets=["runs.parquet"])
    _limit_once_checkpointed(workdir, on_slurm, env)
    _finish(local)
    _finish(on_slurm)
    reference, result = _result(reference_dir), _result(workdir)
    [run_id] = [path.name for path in (workdir / "results" / "smoke" / "runs").iterdir()]

    # SLURM killed it at the limit once or more, then a retry completed
    states = [_jobs(state)[job_id] for job_id in _slurm_jobs_that_ran(workdir, f"run_id={run_id}")]
    assert states[0] == ["TIMEOUT"], f"{states}: the run ended within its limit ({reference['train_seconds']:.0f} s)"
    # a later attempt may exit on SLURM's SIGTERM warning (state saved, exit 1: FAILED) before the kill (TIMEOUT)
    assert states[-1] == ["COMPLETED"] and all(s in (["TIMEOUT"], ["FAILED"]) for s in states[:-1]), states
    # the first retry found the checkpoint saved before the limit passed; any later retry, its own
    assert 1 <= result["resumed"] <= len(states) - 1
    for key in ("val_loss", "val_loss_by_domain", "train_loss", "steps"):
        assert result[key] == reference[key], key
    curve, reference_curve = (pd.read_parquet(d / "results" / "smoke" / "runs" / run_id / "curve.parquet")
                              for d in (workdir, reference_dir))
    assert curve["train_loss"].equals(reference_curve["train_loss"])

    # the last attempt's log: it started from a checkpoint, not from step 0
    log = (workdir / "results" / "smoke" / "logs" / "train" / f"{run_id}.log").read_text()
    [resumed_at] = map(int, re.findall(r"resumed from step (\d+) of", log))
    assert 0 < resumed_at < result["steps"]


@pytest.mark.parametrize("device, gres", [("cuda", "gres=gpu:1"), ("cpu", None)])
def test_a_cuda_study_asks_slurm_for_one_gpu_per_training_job(tmp_path, device, gres):
    """A dry run through the profile (no cluster needed): with train.device cuda every training job carries
    gres=gpu:1, a string resource, so a group of them asks for one GPU; on the CPU none does."""
    config = {**CLUSTER_SMOKE, "train": {**CLUSTER_SMOKE["train"], "device": device}}
    done = _snakemake(tmp_path, config, "--workflow-profile", str(REPO / "workflow" / "profiles" / "slurm"), "-n")
    jobs = re.findall(r"rule (train|train_trunk):.*?resources: ([^\n]*)", done, flags=re.S)
    assert sorted(rule for rule, _ in jobs) == ["train"] * 9 + ["train_trunk"] * 3
    assert all((gres in resources.split(", ")) if gres else "gres=" not in resources for _, resources in jobs)
