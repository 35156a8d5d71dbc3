import math

import pytest

from isoflop.config import validate_config
from isoflop.errors import UserError
from isoflop.plan import content_id, make_plan, shape_accounting, stage_ids


def _runs(config, tokens_id):
    return list(make_plan(config, tokens_id)["runs"].values())


def _config(**plan):
    return validate_config({"plan": plan} if plan else {})


def test_content_id_is_order_free_and_sensitive():
    assert content_id({"a": 1, "b": 2}) == content_id({"b": 2, "a": 1})
    assert content_id({"a": 1}) != content_id({"a": 2})
    assert len(content_id("x")) == 12


def test_default_grid_shape_and_accounting():
    config = _config()
    runs = _runs(config, "tok")
    budgets = sorted({r["budget"] for r in runs})
    assert len(budgets) >= 3 and budgets[-1] / budgets[0] >= 10
    for budget in budgets:
        sizes = sorted({r["N"] for r in runs if r["budget"] == budget})
        assert len(sizes) >= 5
    for run in runs:
        per_token = shape_accounting(config, run["d_model"])["primary_flops_per_token"]
        # D is whole steps of batch x seq_len; C is D times the convention's FLOPs per token
        assert run["D"] % (config["train"]["batch_size"] * config["model"]["seq_len"]) == 0
        assert run["C"] == run["D"] * per_token
        assert abs(run["C"] / run["budget"] - 1) < 0.02
        assert run["steps"] >= config["train"]["min_steps"]


def test_run_ids_change_with_what_determines_the_result_only():
    base = {r["run_id"] for r in _runs(_config(), "tok")}
    assert len(base) == len(_runs(_config(), "tok"))
    assert base == {r["run_id"] for r in _runs(_config(), "tok")}
    assert base.isdisjoint({r["run_id"] for r in _runs(_config(), "other-data")})
    lr = validate_config({"train": {"lr": 0.03}})
    assert base.isdisjoint({r["run_id"] for r in _runs(lr, "tok")})
    tracking = validate_config({"tracking": {"experiment": "elsewhere"}, "fit": {"bootstrap": 7}})
    assert base == {r["run_id"] for r in _runs(tracking, "tok")}


def test_adding_a_budget_keeps_existing_run_ids():
    config = _config()
    wider = _config(budgets=config["plan"]["budgets"] + [1e13])
    old = {r["run_id"] for r in _runs(config, "tok")}
    assert old <= {r["run_id"] for r in _runs(wider, "tok")}


def test_sizes_are_centred_on_the_prior_optimum():
    runs = _runs(_config(budgets=[1e11, 1e14], ladder=[16, 32, 48, 64, 80, 96, 128, 256], sizes_per_budget=3,
                             tokens_per_param=20), "tok")
    small = sorted(r["d_model"] for r in runs if r["budget"] == 1e11)
    large = sorted(r["d_model"] for r in runs if r["budget"] == 1e14)
    assert small == [16, 32, 48]  # clipped at the ladder's low end
    assert large == [96, 128, 256]


def test_budget_too_small_names_the_key():
    with pytest.raises(UserError) as err:
        _runs(_config(budgets=[1e12, 1e8]), "tok")
    message = str(err.value)
    assert "plan.budgets[1]" in message and "train.min_steps" in message and "allowed values" in message


def test_too_many_sizes_names_the_key():
    with pytest.raises(UserError, match=r"plan.sizes_per_budget.*allowed values: 1..3"):
        _runs(_config(ladder=[16, 32, 48], sizes_per_budget=4), "tok")


def test_stage_ids_chain():
    config = _config()
    ids = stage_ids(config, {"stdlib": "py"})
    changed = validate_config({"tokenizer": {"vocab_size": 1024}})
    ids2 = stage_ids(changed, {"stdlib": "py"})
    assert ids["corpus"] == ids2["corpus"] and ids["curated"] == ids2["curated"]
    assert ids["tokens"] != ids2["tokens"]
    assert stage_ids(config, {"stdlib": "other python"})["tokens"] != ids["tokens"]


def test_width_scaled_learning_rate():
    runs = _runs(_config(), "tok")
    by_d = {r["d_model"]: r["spec"]["train"]["lr"] for r in runs}
    assert math.isclose(by_d[32], 0.02) and math.isclose(by_d[64], 0.02 / math.sqrt(2))
