"""The training loop: outputs, determinism, data order, divergence, resume after SIGKILL, wsd branches."""

import contextlib
import copy
import io
import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch

from isoflop.errors import UserError
from isoflop.train.data import BatchSampler, eval_windows
from isoflop.train.loop import DIVERGENCE_WINDOW, trailing_means, train_family, train_run, train_trunk
from isoflop.train.spec import RunSpec, branch_step, trunk_spec

VOCAB = 32
VAL_SIZES = {"code": 1500, "prose": 2600}


def markov_tokens(rng, n, transitions):
    """Tokens of a sparse first-order Markov chain (each token has 2 possible successors)."""
    out = np.empty(n, dtype=np.uint16)
    state = 0
    for i in range(n):
        state = transitions[state, rng.integers(2)]
        out[i] = state
    return out


@pytest.fixture(scope="module")
def tokens_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tokens")
    rng = np.random.default_rng(0)
    meta = {"vocab_size": VOCAB, "eos_id": 0, "dtype": "uint16", "domains": {}, "fingerprint": "f00d"}
    for domain, val_size in VAL_SIZES.items():
        transitions = rng.integers(0, VOCAB, size=(VOCAB, 2))
        (root / domain).mkdir()
        markov_tokens(rng, 20_000, transitions).tofile(root / domain / "train.bin")
        markov_tokens(rng, val_size, transitions).tofile(root / domain / "val.bin")
        bytes_per_token = 1.5 if domain == "code" else 3.0
        meta["domains"][domain] = {
            "train_tokens": 20_000, "val_tokens": val_size,
            "train_bytes": int(20_000 * bytes_per_token), "val_bytes": int(val_size * bytes_per_token),
        }  # fmt: skip
    (root / "meta.json").write_text(json.dumps(meta))
    return root


def make_spec(steps=60, **train):
    seq_len, batch = 32, 8
    return {
        "model": {"d_model": 32, "n_layers": 1, "n_heads": 2, "vocab_size": VOCAB, "seq_len": seq_len},
        "mixture": {"code": 1.0, "prose": 1.0},
        "train": {"tokens": steps * seq_len * batch, "batch_size": batch, "lr": 1e-2, "warmup_steps": 5,
                  "seed": 3, "eval_tokens": 1024, "log_every": 7, **train},
    }  # fmt: skip


def curve_of(out_dir):
    return pd.read_parquet(out_dir / "curve.parquet")


def test_run_writes_result_and_curve(tokens_dir, tmp_path):
    spec = make_spec(steps=60, eval_every=25)
    result = train_run(spec, tokens_dir, tmp_path, progress=False)
    assert json.loads((tmp_path / "result.json").read_text()) == result
    assert result["status"] == "ok" and result["steps"] == 60 and result["tokens"] == 60 * 8 * 32
    assert result["train_loss"] < 0.75 * math.log(VOCAB)  # learned something
    assert result["flops"]["dense"] == result["flops_per_token"]["dense"] * result["tokens"]
    assert result["spec"]["train"]["schedule"] == "cosine"  # defaults are echoed

    # evaluation: 1024 tokens of code (32 windows) but prose's 2600 allow 1024 as well; bpb from meta.json
    by_domain = result["val_loss_by_domain"]
    assert result["val_loss"] == pytest.approx((by_domain["code"] + by_domain["prose"]) / 2, rel=1e-12)
    assert result["val_bpb_by_domain"]["code"] == pytest.approx(by_domain["code"] / 1.5 / math.log(2))
    assert result["val_bpb"] == pytest.approx(
        (by_domain["code"] + by_domain["prose"]) / (1.5 + 3.0) / math.log(2), rel=1e-12
    )

    curve = curve_of(tmp_path)
    train = curve[curve.kind == "train"]
    assert list(train.step) == list(range(1, 61))
    assert train.train_loss.iloc[-1] == result["train_loss"]
    assert train.lr.iloc[0] == pytest.approx(1e-2 / 5)
    evals = curve[curve.kind == "eval"]
    assert sorted(set(evals.step)) == [25, 50, 60]
    assert set(evals.domain) == {"code", "prose", "*"}
    last = evals[(evals.step == 60) & (evals.domain == "*")]
    assert last.val_loss.item() == result["val_loss"]
    early = evals[(evals.step == 25) & (evals.domain == "*")]
    assert early.val_loss.item() > result["val_loss"]

    # timings: the run's span is its wall time, and each row is stamped when its step or evaluation ended
    assert result["ended_at"] - result["started_at"] == pytest.approx(result["wall_seconds"], abs=0.05)
    assert train.seconds.is_monotonic_increasing and train.seconds.nunique() == 60
    assert 0 < train.seconds.iloc[0] < train.seconds.iloc[-1] < result["wall_seconds"]
    assert (last.seconds.item() > train.seconds.iloc[-1]) and (early.seconds.item() > train.seconds.iloc[24])


def test_same_spec_is_bit_identical_and_seed_matters(tokens_dir, tmp_path):
    spec = make_spec(steps=30)
    first = train_run(spec, tokens_dir, tmp_path / "a", progress=False)
    second = train_run(spec, tokens_dir, tmp_path / "b", progress=False)
    assert first["val_loss_by_domain"] == second["val_loss_by_domain"]
    assert np.array_equal(curve_of(tmp_path / "a").train_loss, curve_of(tmp_path / "b").train_loss, equal_nan=True)
    other = make_spec(steps=30, seed=4)
    assert train_run(other, tokens_dir, tmp_path / "c", progress=False)["val_loss"] != first["val_loss"]


def test_batches_are_a_function_of_seed_and_step(tokens_dir):
    sampler = BatchSampler(tokens_dir, {"code": 3.0, "prose": 1.0}, seq_len=16, batch_size=512, seed=9)
    again = BatchSampler(tokens_dir, {"code": 3.0, "prose": 1.0}, seq_len=16, batch_size=512, seed=9)
    assert torch.equal(sampler.batch(7), again.batch(7))
    assert not torch.equal(sampler.batch(7), sampler.batch(8))
    # every row is a contiguous window of one domain's train split, domains drawn 3:1
    code = np.fromfile(tokens_dir / "code" / "train.bin", dtype=np.uint16)
    code_windows = {code[i : i + 17].tobytes() for i in range(len(code) - 16)}
    rows = sampler.batch(7).numpy().astype(np.uint16)
    from_code = np.mean([row.tobytes() in code_windows for row in rows])
    assert from_code == pytest.approx(0.75, abs=0.06)
    only_prose = BatchSampler(tokens_dir, {"code": 0.0, "prose": 1.0}, seq_len=16, batch_size=64, seed=9)
    assert not any(row.tobytes() in code_windows for row in only_prose.batch(0).numpy().astype(np.uint16))


def test_eval_windows_are_the_first_val_tokens(tokens_dir):
    windows = eval_windows(tokens_dir, "code", seq_len=100, max_tokens=10_000)
    val = np.fromfile(tokens_dir / "code" / "val.bin", dtype=np.uint16)
    assert windows.shape == (14, 101)  # (1500 - 1) // 100
    assert np.array_equal(windows[:, :-1].flatten().numpy(), val[:1400])
    assert np.array_equal(windows[:, -1].numpy(), val[100:1401:100])
    with pytest.raises(UserError, match="val tokens"):
        eval_windows(tokens_dir, "code", seq_len=2000, max_tokens=10_000)


def test_divergence_is_reported_not_raised(tokens_dir, tmp_path):
    spike = train_run(make_spec(steps=40, divergence_factor=1.0, lr=0.3, warmup_steps=2), tokens_dir, tmp_path / "a", progress=False)
    assert spike["status"] == "diverged" and spike["val_loss"] is None
    assert DIVERGENCE_WINDOW - 1 <= spike["diverged_step"] < 40
    curve = curve_of(tmp_path / "a")
    means = trailing_means(curve.train_loss.to_numpy()[: spike["diverged_step"] + 1], DIVERGENCE_WINDOW)
    assert means[-1] > means[:-1].min()  # the offending window went above the running minimum of windows

    blown = train_run(make_spec(steps=40, lr=1e30, grad_clip=0.0), tokens_dir, tmp_path / "b", progress=False)
    assert blown["status"] == "diverged"
    assert json.loads((tmp_path / "b" / "result.json").read_text())["diverged_step"] == blown["diverged_step"]


def test_trailing_means_judge_divergence_not_single_batches():
    """Under a mixture of an easy and a hard group one batch's loss swings by 2x with what it holds (seen: 0.75 to
    1.55 nats in consecutive steps, which flagged healthy proxies as diverged); ten steps' means do not."""
    swinging = np.array([1.6, 0.75] * 20)
    means = trailing_means(swinging, DIVERGENCE_WINDOW)
    assert means.shape == (40 - DIVERGENCE_WINDOW + 1,) and np.allclose(means, (1.6 + 0.75) / 2)
    assert swinging.max() > 2.0 * swinging.min() and means.max() < 2.0 * means.min()


def test_spec_errors_name_the_key(tokens_dir, tmp_path):
    bad = make_spec()
    bad["train"]["learning_rate"] = 1.0
    with pytest.raises(UserError, match="learning_rate"):
        train_run(bad, tokens_dir, tmp_path, progress=False)
    missing_domain = make_spec()
    missing_domain["mixture"] = {"code": 1.0, "poetry": 1.0}
    with pytest.raises(UserError, match="poetry"):
        train_run(missing_domain, tokens_dir, tmp_path, progress=False)
    wrong_vocab = make_spec()
    wrong_vocab["model"]["vocab_size"] = 64
    with pytest.raises(UserError, match="vocab_size"):
        train_run(wrong_vocab, tokens_dir, tmp_path, progress=False)


def test_micro_batches_match_the_full_batch(tokens_dir, tmp_path):
    whole = train_run(make_spec(steps=10), tokens_dir, tmp_path / "a", progress=False)
    split = train_run(make_spec(steps=10, micro_batch_size=2), tokens_dir, tmp_path / "b", progress=False)
    assert split["val_loss"] == pytest.approx(whole["val_loss"], rel=1e-4)


@pytest.mark.parametrize("checkpoint_every, checkpoint_minutes, kill", [
    (20, 0.0, signal.SIGKILL),  # checkpoints by step count (in the spec)
    (0, 0.001, signal.SIGKILL),  # by wall clock (train.checkpoint_minutes), here every 60 ms
    (0, 0.0, signal.SIGTERM),  # none: SIGTERM (SLURM's, at a time limit or pre-emption) saves one as it stops
])
def test_a_killed_run_resumes_bit_identically(tokens_dir, tmp_path, checkpoint_every, checkpoint_minutes, kill):
    spec = make_spec(steps=400, checkpoint_every=checkpoint_every)
    spec["model"].update(d_model=64, n_heads=4)
    reference = train_run(spec, tokens_dir, tmp_path / "straight", progress=False)

    killed_dir = tmp_path / "killed"
    script = ("import json, sys; from isoflop.train.loop import train_run; train_run(json.loads(sys.argv[1]), "
              "sys.argv[2], sys.argv[3], progress=False, checkpoint_minutes=float(sys.argv[4]))")
    child = subprocess.Popen([sys.executable, "-c", script, json.dumps(spec), str(tokens_dir), str(killed_dir),
                              str(checkpoint_minutes)], stderr=subprocess.PIPE, text=True)
    next(line for line in child.stderr if "start: 400 steps" in line)  # printed as the first step begins
    deadline = time.monotonic() + 120
    while not (killed_dir / "ckpt.pt").exists() and kill == signal.SIGKILL and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(child.pid, kill)
    _, stderr = child.communicate(timeout=120)
    assert not (killed_dir / "result.json").exists(), "the child finished before it could be killed"
    assert (killed_dir / "ckpt.pt").exists()
    if kill == signal.SIGTERM:
        assert child.returncode == 1 and "SIGTERM at step" in stderr, stderr

    resumed = train_run(spec, tokens_dir, killed_dir, progress=False)
    assert resumed["resumed"] == 1
    assert not (killed_dir / "ckpt.pt").exists()  # removed once result.json is written
    assert resumed["train_loss"] == reference["train_loss"]
    assert resumed["val_loss_by_domain"] == reference["val_loss_by_domain"]
    assert np.array_equal(curve_of(killed_dir).train_loss, curve_of(tmp_path / "straight").train_loss, equal_nan=True)


def test_checkpoint_of_another_spec_is_refused(tokens_dir, tmp_path):
    train_trunk(make_spec(steps=20, schedule="constant"), tokens_dir, tmp_path / "trunk", branch_steps=[10], progress=False)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "ckpt.pt").write_bytes((tmp_path / "trunk" / "branch-10.pt").read_bytes())
    with pytest.raises(UserError, match="different spec"):
        train_run(make_spec(steps=20), tokens_dir, tmp_path / "run", progress=False)


class _Payload:
    """Unpickling this runs a command: what a crafted ckpt.pt planted in a run folder would carry."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_planted_malicious_checkpoint_is_refused_and_runs_nothing(tokens_dir, tmp_path):
    marker = tmp_path / "payload-ran"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    torch.save({"spec": make_spec(), "model": _Payload(marker)}, run_dir / "ckpt.pt")
    with pytest.raises(UserError, match=r"ckpt.pt: refused, it is not a plain training state"):
        train_run(make_spec(), tokens_dir, run_dir, progress=False)
    assert not marker.exists()


def test_wsd_branches_are_bit_identical_to_runs_from_scratch(tokens_dir, tmp_path):
    shape = {"schedule": "wsd", "decay_frac": 0.25, "decay_shape": "1-sqrt", "eval_every": 16}
    runs = {steps: make_spec(steps=steps, **shape) for steps in (40, 64)}
    starts = {steps: branch_step(spec) for steps, spec in runs.items()}
    assert starts == {40: 30, 64: 48}

    trunk = trunk_spec(runs.values())
    assert trunk["train"]["schedule"] == "constant" and trunk["train"]["eval_every"] == 16
    trunk_result = train_trunk(trunk, tokens_dir, tmp_path / "trunk", branch_steps=starts.values(), progress=False)
    assert trunk_result["status"] == "ok" and trunk_result["steps"] == 48
    for steps, spec in runs.items():
        scratch = train_run(spec, tokens_dir, tmp_path / f"scratch{steps}", progress=False)
        branched = train_run(
            spec, tokens_dir, tmp_path / f"branch{steps}", progress=False,
            init_from=tmp_path / "trunk" / f"branch-{starts[steps]}.pt",
        )  # fmt: skip
        assert branched["start_step"] == starts[steps]
        assert branched["val_loss_by_domain"] == scratch["val_loss_by_domain"]
        assert branched["train_loss"] == scratch["train_loss"]
        timeless = ["seconds"]  # when each step ran differs, what it computed does not
        pd.testing.assert_frame_equal(curve_of(tmp_path / f"scratch{steps}").drop(columns=timeless),
                                      curve_of(tmp_path / f"branch{steps}").drop(columns=timeless))


def test_a_family_equals_its_runs_from_scratch_and_resumes_without_redoing_finished_members(tokens_dir, tmp_path):
    shape = {"schedule": "wsd", "decay_frac": 0.25, "decay_shape": "1-sqrt"}
    runs = {f"r{steps}": make_spec(steps=steps, **shape) for steps in (40, 64)}
    branches = {name: (spec, branch_step(spec)) for name, spec in runs.items()}
    trunk, results = train_family(trunk_spec(runs.values()), branches, tokens_dir, tmp_path / "work", progress=False)
    assert trunk["steps"] == 48
    for name, spec in runs.items():
        scratch = train_run(spec, tokens_dir, tmp_path / f"scratch-{name}", progress=False)
        assert results[name]["val_loss_by_domain"] == scratch["val_loss_by_domain"]
        assert results[name]["wall_seconds"] == results[name]["run_seconds"]  # not the family's process age
    # a family killed after its first branch: the trunk and that branch are kept, the other branch retrains
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "work" / "trunk" / "result.json",
                                                 tmp_path / "work" / "r40" / "result.json")}
    (tmp_path / "work" / "r64" / "result.json").unlink()
    _, again = train_family(trunk_spec(runs.values()), branches, tokens_dir, tmp_path / "work", progress=False)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert again["r64"]["val_loss_by_domain"] == results["r64"]["val_loss_by_domain"]


def test_trunk_spec_needs_runs_of_one_shape():
    with pytest.raises(UserError, match="differ"):
        trunk_spec([make_spec(steps=40, schedule="wsd"), make_spec(steps=64, schedule="wsd", lr=0.02)])
    with pytest.raises(UserError, match="wsd"):
        trunk_spec([make_spec(steps=40)])


def test_branch_from_an_incompatible_trunk_is_refused(tokens_dir, tmp_path):
    train_trunk(make_spec(steps=20, schedule="constant"), tokens_dir, tmp_path / "trunk", branch_steps=[15], progress=False)
    state = tmp_path / "trunk" / "branch-15.pt"
    other_seed = make_spec(steps=20, schedule="wsd", decay_frac=0.25, seed=8)
    with pytest.raises(UserError, match="train.seed"):
        train_run(other_seed, tokens_dir, tmp_path / "a", progress=False, init_from=state)
    decays_too_early = make_spec(steps=20, schedule="wsd", decay_frac=0.5)  # decay starts at step 10
    with pytest.raises(UserError, match="learning rates"):
        train_run(decays_too_early, tokens_dir, tmp_path / "b", progress=False, init_from=state)
    with pytest.raises(UserError, match="constant"):
        train_trunk(make_spec(steps=20), tokens_dir, tmp_path / "c", branch_steps=[5], progress=False)


def test_run_spec_derives_steps():
    spec = RunSpec.from_dict(make_spec(steps=10))
    assert spec.steps == 10 and spec.tokens_per_step == 256
    uneven = copy.deepcopy(make_spec(steps=10))
    uneven["train"]["tokens"] += 1
    assert RunSpec.from_dict(uneven).steps == 11


@pytest.mark.slow
def test_compiled_model_trains_like_eager(tokens_dir, tmp_path):
    eager = train_run(make_spec(steps=20), tokens_dir, tmp_path / "eager", progress=False)
    compiled = train_run(make_spec(steps=20, compile=True), tokens_dir, tmp_path / "compiled", progress=False)
    assert compiled["val_loss"] == pytest.approx(eager["val_loss"], rel=1e-3)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_bfloat16_run_tracks_the_cpu_run(tokens_dir, tmp_path):
    cpu = train_run(make_spec(steps=60), tokens_dir, tmp_path / "cpu", device="cpu", progress=False)
    cuda = train_run(make_spec(steps=60, dtype="bfloat16"), tokens_dir, tmp_path / "cuda", device="cuda", progress=False)
    assert cuda["status"] == "ok" and cuda["device"].startswith("cuda")
    assert cuda["val_loss"] == pytest.approx(cpu["val_loss"], rel=0.05)


class Terminal(io.StringIO):
    """A stand-in for stderr on a terminal."""

    def isatty(self):
        return True


def test_a_log_gets_lines_and_a_terminal_the_bar_with_the_same_numbers(tokens_dir, tmp_path):
    spec = make_spec(steps=60, eval_every=25, checkpoint_every=50)
    log = tmp_path / "run.log"
    with open(log, "w") as handle, contextlib.redirect_stderr(handle):  # what `logged` does to a rule's job
        logged_run = train_run(spec, tokens_dir, tmp_path / "logged", progress=True)
    text = log.read_text()
    assert "\r" not in text
    evals = curve_of(tmp_path / "logged").query("kind == 'eval' and domain == '*'").set_index("step")["val_loss"]
    assert text.splitlines() == [
        "logged: start: 60 steps, 15,360 tokens (256 per step), on cpu",
        f"logged: step 25/60: val_loss {evals[25]:.4f}",
        f"logged: step 50/60: val_loss {evals[50]:.4f}",
        "logged: step 50/60: checkpoint",
        f"logged: ok at step 60: val_loss {logged_run['val_loss']:.4f}, train_loss {logged_run['train_loss']:.4f}, "
        f"{logged_run['train_seconds']:.1f} s training, {logged_run['tokens_per_second']:,.0f} tokens/s",
    ]
    terminal = Terminal()
    with contextlib.redirect_stderr(terminal):
        bar_run = train_run(spec, tokens_dir, tmp_path / "bar", progress=True)
    assert "\r" in terminal.getvalue() and "60/60" in terminal.getvalue() and "val_loss" not in terminal.getvalue()
    assert bar_run["val_loss"] == logged_run["val_loss"] and bar_run["train_loss"] == logged_run["train_loss"]
    pd.testing.assert_frame_equal(curve_of(tmp_path / "bar").drop(columns="seconds"),
                                  curve_of(tmp_path / "logged").drop(columns="seconds"))  # timings differ, numbers not
