"""The smoke study with every run trained on two data-parallel ranks (train.devices: 2, torchrun, gloo):
end to end through Snakemake, with the run ids and the batches of one device, and the final loss of one device
accumulating the same micro-batches."""

import json

import pandas as pd
import pytest
import yaml
from conftest import REPO
from test_study_e2e import snakemake
from test_train_distributed import batch_hashes

from isoflop.train.loop import train_run

SAME = 1e-4  # relative: two ranks sum their gradients in another order than one


def smoke_config(tmp_path, name, **train):
    config = yaml.safe_load((REPO / "tests" / "smoke.yaml").read_text())
    config["train"].update(train)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return path


def finished_runs(study_dir):
    return {path.parent.name: json.loads(path.read_text()) for path in (study_dir / "runs").glob("*/result.json")}


@pytest.mark.slow
def test_the_smoke_study_on_two_ranks_has_the_run_ids_and_batches_of_one_device(tmp_path):
    workdir = tmp_path / "two"
    done = snakemake(workdir, configfile=smoke_config(tmp_path, "two.yaml", device="cpu", devices=2))
    assert done.returncode == 0, done.stderr[-4000:]
    check_against_one_device(workdir, tmp_path)


def check_against_one_device(workdir, tmp_path):
    study = workdir / "results" / "smoke"
    assert (study / "report.md").exists() and (study / "laws.json").exists()
    on_two = finished_runs(study)
    assert len(on_two) == len(pd.read_parquet(study / "runs.parquet")) + 1 == 10  # the grid and the forecast run
    assert {result["ranks"] for result in on_two.values()} == {2}

    # the same run ids on one device: the study, configured for one device, has nothing to train
    dry = snakemake(workdir, "-n", configfile=smoke_config(tmp_path, "one.yaml", device="cpu"))
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout, dry.stdout[-3000:]

    # the shortest run again on one device, from scratch (a branched run is bit-identical to one trained from
    # scratch): the same batch at every step; with the per-rank micro-batch, the same final loss
    run_id, result = min(on_two.items(), key=lambda item: item[1]["steps"])
    tokens_dir = next((study / "tokens").glob("*/meta.json")).parent
    one = train_run(result["spec"], tokens_dir, tmp_path / "one", progress=False)
    curve = pd.read_parquet(study / "runs" / run_id / "curve.parquet")
    assert curve[curve.kind == "train"].batch_hash.tolist() == batch_hashes(tmp_path / "one")
    assert one["tokens_by_domain"] == result["tokens_by_domain"]
    per_rank = dict(result["spec"], train={**result["spec"]["train"], "micro_batch_size": 4})
    accumulated = train_run(per_rank, tokens_dir, tmp_path / "accumulated", progress=False)
    assert result["val_loss"] == pytest.approx(accumulated["val_loss"], rel=SAME)
    # the whole batch at once on one device sums its gradient in another order: the rounding grows over the
    # run's steps into a gap of the size that micro-batching alone makes on one device
    assert abs(result["val_loss"] / one["val_loss"] - 1) == pytest.approx(
        abs(accumulated["val_loss"] / one["val_loss"] - 1), rel=1e-3)
