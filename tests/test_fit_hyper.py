"""The batch-size law from a batch sweep, and the plan's batch-size axis that makes such a sweep."""

import itertools
import math

import numpy as np
import pytest

from isoflop.config import validate_config
from isoflop.errors import UserError
from isoflop.fit import fit_batch_law
from isoflop.plan import make_plan

TRUE = {"c": 0.02, "p": 0.15, "q": 0.35}  # batch* = c N^p D^q (sequences); DeepSeek-like: mostly D
MULTIPLIERS = 2.0 ** np.arange(-3, 4)  # the sweep: 7 batch sizes, 2x apart, around a fixed base batch


def _synthetic_sweep(noise: float, seed: int):
    """Runs of a batch sweep at 9 (N, D) points: loss = a Chinchilla-like L(N, D) plus a penalty in
    log batch around the true optimum, 0.02 nats at 2x off, plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for n, d in itertools.product([1e5, 3e5, 1e6], [2e6, 1e7, 5e7]):
        optimum = TRUE["c"] * n ** TRUE["p"] * d ** TRUE["q"]
        base = 2.0 ** round(math.log2(optimum * rng.uniform(0.6, 1.6)))  # the sweep's centre is not the optimum
        for batch in base * MULTIPLIERS:
            loss = 1.7 + 400 / n**0.34 + 400 / d**0.28 + 0.02 / math.log(2) ** 2 * math.log(batch / optimum) ** 2
            rows.append((n, d, batch, loss + rng.normal(0, noise)))
    return np.array(rows).T


def test_batch_law_recovers_a_known_optimum():
    """Exact losses: c, p and q to 1e-6. With 3 mnats of noise per run (about the seed noise of a good study):
    the truth inside every 95% interval, p and q within 0.1."""
    n, d, batch, loss = _synthetic_sweep(noise=0.0, seed=0)
    exact = fit_batch_law(n, d, batch, loss)
    for key, value in TRUE.items():
        assert exact["params"][key] == pytest.approx(value, rel=1e-6), key
    n, d, batch, loss = _synthetic_sweep(noise=0.003, seed=1)
    noisy = fit_batch_law(n, d, batch, loss, bootstrap=100, seed=0)
    assert noisy["n_groups_used"] == 9
    for key, value in TRUE.items():
        low, high = noisy["ci95"][key]
        assert low <= value <= high, (key, noisy["params"][key], noisy["ci95"][key])
    assert abs(noisy["params"]["p"] - TRUE["p"]) < 0.1 and abs(noisy["params"]["q"] - TRUE["q"]) < 0.1


def test_plan_batch_axis_trains_every_batch_size_on_the_same_tokens():
    config = validate_config({"train": {"batch_multipliers": [0.5, 1.0, 2.0], "min_steps": 20}})
    runs = list(make_plan(config, "tok")["runs"].values())
    default = list(make_plan(validate_config({}), "tok")["runs"].values())
    assert len(runs) == 3 * len(default)
    seq_len = config["model"]["seq_len"]
    points = {}
    for run in runs:
        batch = run["spec"]["train"]["batch_size"]
        assert batch == 16 * run["batch_multiplier"]
        assert run["D"] % (batch * seq_len) == 0 and run["steps"] == run["D"] // (batch * seq_len)
        points.setdefault((run["budget"], run["d_model"], run["replicate"]), set()).add((batch, run["D"]))
    assert all(len(p) == 3 and len({d for _, d in p}) == 1 for p in points.values())


def test_a_batch_multiplier_that_is_not_whole_sequences_is_named():
    with pytest.raises(UserError, match="train.batch_multipliers"):
        make_plan(validate_config({"train": {"batch_multipliers": [0.3]}}), "tok")


def test_plan_applies_fitted_rules_per_grid_point():
    """`train.hyperparameters`: each point's lr and batch size from c N^p D^q at its N and budget tokens (the
    batch law's truth above as the batch rule), the sweeps' multipliers on top."""
    rules = {"lr": {"c": 2.0, "p": -0.5, "q": 0.1}, "batch_size": TRUE}
    config = validate_config({"train": {"hyperparameters": rules, "lr_multipliers": [0.5, 1.0], "min_steps": 20}})
    runs = list(make_plan(config, "tok")["runs"].values())
    batches = set()
    for run in runs:
        d = run["budget"] / (run["C"] / run["D"])  # the budget's tokens before rounding to whole steps
        lr = 2.0 * run["N"] ** -0.5 * d**0.1 * run["lr_multiplier"]
        assert run["spec"]["train"]["lr"] == pytest.approx(lr, rel=1e-12)
        batch = round(TRUE["c"] * run["N"] ** TRUE["p"] * d ** TRUE["q"])
        assert run["spec"]["train"]["batch_size"] == batch
        batches.add(batch)
    assert len(batches) > 3  # the rule moves the batch size across the grid
    with pytest.raises(UserError, match="train.hyperparameters.lr"):
        validate_config({"train": {"hyperparameters": {"lr": {"c": 1.0, "p": 0.1}}}})
