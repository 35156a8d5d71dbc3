"""One run on two data-parallel ranks through `--workflow-profile workflow/profiles/slurm`: the training job
asks SLURM for one task per rank (and one GPU per rank on CUDA) and launches its ranks with srun inside its
allocation. The dry run needs no cluster; the run itself uses test_cluster.py's one-node cluster (marker
`cluster`)."""

import json
import re

import pytest
from conftest import REPO
from test_cluster import (  # noqa: F401  (local_smoke, slurm: the cluster suite's fixtures)
    CLUSTER_SMOKE,
    _copy_data,
    _finish,
    _long_run,
    _on_the_cluster,
    _snakemake,
    local_smoke,
    slurm,
)

PROFILE = str(REPO / "workflow" / "profiles" / "slurm")


@pytest.mark.parametrize("device, gres", [("cuda", "gres=gpu:2"), ("cpu", None)])
def test_a_two_rank_study_asks_slurm_for_a_task_per_rank(tmp_path, device, gres):
    config = {**CLUSTER_SMOKE, "train": {**CLUSTER_SMOKE["train"], "device": device, "devices": 2}}
    done = _snakemake(tmp_path, config, "--workflow-profile", PROFILE, "-n")
    jobs = re.findall(r"rule (train|train_trunk):.*?resources: ([^\n]*)", done, flags=re.DOTALL)
    assert sorted(rule for rule, _ in jobs) == ["train"] * 9 + ["train_trunk"] * 3
    for _, resources in jobs:
        listed = resources.split(", ")
        assert "tasks=2" in listed and "mpi=srun" in listed, resources
        assert (gres in listed) if gres else "gres=" not in resources, resources


@pytest.mark.cluster
def test_a_run_on_two_ranks_trains_through_srun_on_the_cluster(slurm, local_smoke, tmp_path):  # noqa: F811
    env, _ = slurm
    study = _long_run(local_smoke, seconds=20)
    study["train"] = {**study["train"], "device": "cpu", "devices": 2}
    workdir, reference_dir = tmp_path / "cluster", tmp_path / "local"
    _finish(_on_the_cluster(workdir, study, local_smoke, env, "--cores", "2", targets=["runs.parquet"]))
    _copy_data(local_smoke, reference_dir)
    _snakemake(reference_dir, study, "--cores", "2", targets=["runs.parquet"])
    [on_slurm], [here] = ([json.loads(p.read_text()) for p in (d / "results" / "smoke" / "runs").glob("*/result.json")]
                          for d in (workdir, reference_dir))
    assert on_slurm["ranks"] == here["ranks"] == 2
    assert on_slurm["val_loss"] == pytest.approx(here["val_loss"], rel=1e-4)
    [log] = (workdir / "results" / "smoke" / "logs" / "train").glob("*.log")
    assert re.search(r": 2 ranks: srun --ntasks=2 ", log.read_text())  # not torchrun: srun, in the allocation
