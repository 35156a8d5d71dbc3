"""studies/gpu_ladder.yaml, the recipe of a GPU-scale study (not run here): it validates against the schema
and its ladder spans what it says, about 20M to 1B parameters."""

import pytest
from conftest import REPO

from isoflop.config import read_config_file, validate_config
from isoflop.train.accounting import param_counts
from isoflop.train.model import ModelConfig

GPT_NEOX_VOCAB = 50277


def test_the_gpu_ladder_recipe_validates_and_spans_20m_to_1b_parameters():
    config = validate_config(read_config_file(REPO / "studies" / "gpu_ladder.yaml"))
    train = config["train"]
    assert train["devices"] == 8 and train["batch_size"] % train["devices"] == 0
    params = [param_counts(ModelConfig.from_size(d, vocab_size=GPT_NEOX_VOCAB, seq_len=config["model"]["seq_len"]))
              ["total"] for d in config["plan"]["ladder"]]
    assert params[0] == pytest.approx(22e6, rel=0.05) and params[-1] == pytest.approx(1.19e9, rel=0.05)
    assert min(config["plan"]["budgets"]) == 1e17 and max(config["plan"]["budgets"]) == 1e19
