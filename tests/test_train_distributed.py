"""One run on several data-parallel ranks (torchrun, gloo on the CPU): the same batches and losses as one
rank, rank 0 alone writes, a dead rank fails the launch in one line and the rerun resumes on any number."""

import shutil
import signal
import textwrap
import threading
import time

import numpy as np
import pandas as pd
import psutil
import pytest
import test_train_loop
import torch
from test_train_loop import make_spec

from isoflop.errors import UserError
from isoflop.train import distributed
from isoflop.train.distributed import Parallel
from isoflop.train.loop import train_family, train_run
from isoflop.train.spec import branch_step, trunk_spec

tokens_dir = test_train_loop.tokens_dir  # the training tests' token folder (a module fixture)

TWO = Parallel(devices=2)
SAME = 1e-4  # relative: two ranks sum their gradients in another order than one


def batch_hashes(out_dir):
    curve = pd.read_parquet(out_dir / "curve.parquet")
    return curve[curve.kind == "train"].sort_values("step").batch_hash.tolist()


# A sitecustomize that every rank imports at start-up (through PYTHONPATH): it records, per rank, each file
# the rank opens for writing under the run's folder, so the test sees which rank writes what.
WRITES_AUDIT = textwrap.dedent("""
    import os, sys
    watched, ledger = os.environ.get("AUDIT_WATCHED"), os.environ.get("AUDIT_LEDGER")
    def hook(event, args):
        if event != "open" or not watched or "RANK" not in os.environ:
            return
        path, mode, flags = args
        writing = (mode and any(c in mode for c in "wax+")) or (flags and flags & (os.O_WRONLY | os.O_RDWR))
        if writing and str(path).startswith(watched):
            with open(f"{ledger}.{os.environ['RANK']}", "a") as out:  # outside the watched folder
                out.write(os.path.basename(str(path)) + "\\n")
    sys.addaudithook(hook)
""")


def test_a_batch_that_does_not_split_over_the_ranks_is_refused_before_any_rank_starts(tokens_dir, tmp_path):
    spec = make_spec(steps=20)
    with pytest.raises(UserError, match=r"train.batch_size=8 does not split over 3 data-parallel ranks"):
        train_run(spec, tokens_dir, tmp_path / "run", progress=False, parallel=Parallel(devices=3))
    assert not (tmp_path / "run").exists()


def test_row_hashes_tell_rows_apart_and_a_batch_digest_its_row_order():
    rows = torch.tensor([[1, 2, 3], [3, 2, 1], [0, 0, 0]])
    hashes = distributed.row_hashes(rows).numpy()
    assert len(set(hashes.tolist())) == 3
    assert distributed.batch_digest(hashes) == distributed.batch_digest(hashes.copy())
    assert distributed.batch_digest(hashes) != distributed.batch_digest(hashes[::-1])


@pytest.mark.slow
def test_two_ranks_see_the_batches_of_one_end_at_its_loss_and_rank_0_alone_writes(tokens_dir, tmp_path,
                                                                                    monkeypatch):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(WRITES_AUDIT)
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path / 'site'}:{__import__('os').environ.get('PYTHONPATH', '')}")
    monkeypatch.setenv("AUDIT_WATCHED", str(tmp_path / "two"))
    monkeypatch.setenv("AUDIT_LEDGER", str(tmp_path / "writes"))
    spec = make_spec(steps=30, micro_batch_size=2, eval_every=10)  # 2 micro-batches per rank accumulate
    one = train_run(spec, tokens_dir, tmp_path / "one", progress=False)
    two = train_run(spec, tokens_dir, tmp_path / "two", progress=False, parallel=TWO)

    hashes = batch_hashes(tmp_path / "one")
    assert len(hashes) == 30 and len(set(hashes)) == 30
    assert batch_hashes(tmp_path / "two") == hashes
    assert two["ranks"] == 2 and one["ranks"] == 1
    assert two["tokens"] == one["tokens"] and two["tokens_by_domain"] == one["tokens_by_domain"]
    assert two["val_loss"] == pytest.approx(one["val_loss"], rel=SAME)
    for domain, loss in one["val_loss_by_domain"].items():
        assert two["val_loss_by_domain"][domain] == pytest.approx(loss, rel=SAME)
    assert two["train_loss"] == pytest.approx(one["train_loss"], rel=SAME)
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["curve.parquet", "result.json"]
    assert (tmp_path / "writes.0").exists(), "the audit saw no write by rank 0: it is not watching"
    assert not (tmp_path / "writes.1").exists(), (tmp_path / "writes.1").read_text()


def rank_process(launcher_pid: int, rank: int) -> psutil.Process | None:
    for child in psutil.Process(launcher_pid).children(recursive=True):
        try:
            if child.environ().get("RANK") == str(rank) and "isoflop.train.rank" in " ".join(child.cmdline()):
                return child
        except psutil.Error:
            continue
    return None


@pytest.mark.slow
def test_a_killed_rank_fails_the_run_in_one_line_and_it_resumes_on_two_ranks_or_one(tokens_dir, tmp_path):
    spec = make_spec(steps=250, checkpoint_every=10)
    reference = train_run(spec, tokens_dir, tmp_path / "straight", progress=False)

    killed = tmp_path / "killed"
    failure: list[BaseException] = []

    def launch():
        try:
            train_run(spec, tokens_dir, killed, progress=False, parallel=TWO)
        except BaseException as err:  # noqa: BLE001  (the test asserts on it)
            failure.append(err)

    launcher = threading.Thread(target=launch)
    launcher.start()
    deadline = time.monotonic() + 120
    while not (killed / "ckpt.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    victim = rank_process(psutil.Process().pid, 1)
    assert victim is not None
    victim.send_signal(signal.SIGKILL)
    launcher.join(timeout=120)
    assert not (killed / "result.json").exists(), "the run finished before its rank could be killed"
    assert len(failure) == 1 and isinstance(failure[0], UserError), failure
    message = str(failure[0])
    assert "\n" not in message
    assert "rank 1 killed by signal 9" in message and "a rerun resumes" in message, message
    assert (killed / "ckpt.pt").exists()

    on_one = tmp_path / "on-one"
    shutil.copytree(killed, on_one)
    for out_dir, parallel in ((killed, TWO), (on_one, Parallel())):
        resumed = train_run(spec, tokens_dir, out_dir, progress=False, parallel=parallel)
        assert resumed["resumed"] == 1 and resumed["ranks"] == parallel.ranks
        assert resumed["val_loss"] == pytest.approx(reference["val_loss"], rel=SAME)
        assert resumed["train_loss"] == pytest.approx(reference["train_loss"], rel=SAME)
        assert batch_hashes(out_dir) == batch_hashes(tmp_path / "straight")


@pytest.mark.slow
def test_a_wsd_family_on_two_sharded_ranks_matches_one(tokens_dir, tmp_path):
    """The trunk's branch states are gathered to rank 0 and its branches load them on both ranks, sharded
    again (FSDP2). The DDP family trains in tests/test_study_devices.py (the smoke study's trunks)."""
    two_ranks = Parallel(devices=2, shard=True)
    specs = {f"run{steps}": make_spec(steps=steps, schedule="wsd", decay_frac=0.25) for steps in (16, 24)}
    trunk = trunk_spec(list(specs.values()))
    members = {name: (spec, branch_step(spec)) for name, spec in specs.items()}
    _, one = train_family(trunk, members, tokens_dir, tmp_path / "one", progress=False)
    _, two = train_family(trunk, members, tokens_dir, tmp_path / "two", progress=False, parallel=two_ranks)
    for name in specs:
        assert two[name]["ranks"] == 2
        assert two[name]["val_loss"] == pytest.approx(one[name]["val_loss"], rel=SAME)
        assert batch_hashes(tmp_path / "two" / name) == batch_hashes(tmp_path / "one" / name)
    assert not (tmp_path / "two" / "launch.json").exists()
    np.testing.assert_equal(sorted(p.name for p in (tmp_path / "two").iterdir()), ["run16", "run24", "trunk"])
