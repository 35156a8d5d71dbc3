import pytest

from isoflop.config import load_config, validate_config
from isoflop.errors import UserError


def test_defaults_fill_every_section():
    config = validate_config({})
    assert config["study"] == "default"
    assert config["plan"]["flops_convention"] == "nonembed_head_attention"
    assert config["tokenizer"]["vocab_size"] == 512
    assert config["corpus"]["stdlib"]["domains"] == ["code", "tests", "docs"]
    assert "val_fraction" in config["curate"]


def test_validation_does_not_mutate_input():
    raw = {"plan": {"budgets": [1e12]}}
    validate_config(raw)
    assert raw == {"plan": {"budgets": [1e12]}}


@pytest.mark.parametrize(
    "raw, fragments",
    [
        ({"plann": {}}, ["unknown config key 'plann'", "allowed keys", "plan"]),
        ({"plan": {"budget": [1]}}, ["'budget'", "under 'plan'", "budgets"]),
        ({"plan": {"budgets": [1e12, -3]}}, ["plan.budgets[1]", "-3", "> 0"]),
        ({"model": {"norm": "batchnorm"}}, ["model.norm", "'rmsnorm', 'layernorm'"]),
        ({"train": {"lr": "fast"}}, ["train.lr", "wrong type"]),
        ({"plan": {"ladder": [16, 20]}}, ["plan.ladder[1]"]),
    ],
)
def test_invalid_config_names_the_key(raw, fragments):
    with pytest.raises(UserError) as err:
        validate_config(raw)
    for fragment in fragments:
        assert fragment in str(err.value)


def test_load_config_reports_missing_file(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_repository_configs_are_valid():
    from conftest import REPO

    for path in [REPO / "config.yaml", REPO / "tests" / "smoke.yaml"]:
        config = load_config(path)
        assert config["plan"]["budgets"]
