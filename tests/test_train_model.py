"""The model, its parameter and FLOP accounting, and the learning-rate schedules."""

import math

import numpy as np
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from isoflop.errors import UserError
from isoflop.train.accounting import flops_per_token, param_counts
from isoflop.train.model import ModelConfig, Transformer, lm_loss
from isoflop.train.schedule import decay_start, lr_schedule

VARIANTS = [
    {},
    {"norm": "layernorm", "positions": "learned"},
    {"qk_norm": True, "tie_embeddings": True},
    {"qk_norm": True, "norm": "layernorm", "positions": "learned", "tie_embeddings": True, "mlp_ratio": 2},
]


@pytest.mark.parametrize(
    "d_model, layers, heads", [(16, 1, 1), (32, 1, 2), (64, 2, 4), (96, 3, 6), (128, 4, 4), (256, 8, 8)]
)
def test_from_size_rule(d_model, layers, heads):
    cfg = ModelConfig.from_size(d_model, vocab_size=256, seq_len=128)
    assert (cfg.n_layers, cfg.n_heads) == (layers, heads)
    assert ModelConfig.from_size(d_model, 256, 128, n_layers=7).n_layers == 7


@pytest.mark.parametrize("bad", [0, 8, 40])
def test_from_size_rejects_sizes_off_the_grid(bad):
    with pytest.raises(UserError, match="d_model"):
        ModelConfig.from_size(bad, vocab_size=256, seq_len=128)


def test_unknown_model_key_is_named():
    with pytest.raises(UserError, match="n_layer"):
        ModelConfig.from_dict({"d_model": 16, "n_layer": 1, "n_heads": 1, "vocab_size": 8, "seq_len": 8})


@pytest.mark.parametrize("options", VARIANTS)
def test_param_counts_match_built_model(options):
    cfg = ModelConfig.from_size(64, vocab_size=100, seq_len=24, **options)
    model = Transformer(cfg)
    counts = param_counts(cfg)
    assert counts["total"] == sum(p.numel() for p in model.parameters())
    embeddings = model.embed.weight.numel() + (model.pos_embed.weight.numel() if model.pos_embed is not None else 0)
    untied_head = 0 if cfg.tie_embeddings else model.head.weight.numel()
    assert counts["nonembed"] == counts["total"] - embeddings - untied_head
    assert counts["nonembed_head"] == counts["nonembed"] + 64 * 100


@pytest.mark.parametrize("options", VARIANTS)
def test_flops_match_counted_matmuls(options):
    """Dense FLOPs = the mm's of a forward + backward; attention = the bmm's of the math SDPA kernel."""
    cfg = ModelConfig.from_size(64, vocab_size=100, seq_len=24, **options)
    model = Transformer(cfg)
    batch = torch.randint(0, 100, (3, cfg.seq_len + 1))
    counter = FlopCounterMode(display=False)
    with sdpa_kernel(SDPBackend.MATH), counter:
        _, objective = lm_loss(model(batch[:, :-1]), batch[:, 1:])
        objective.backward()
    counted = {str(op): n for op, n in counter.get_flop_counts()["Global"].items()}
    tokens = batch[:, 1:].numel()
    expected = flops_per_token(cfg)
    assert counted["aten.mm"] == expected["dense"] * tokens
    assert counted["aten.bmm"] == expected["attention"] * tokens
    assert expected["total"] == expected["dense"] + expected["attention"]
    assert expected["nonembed_6n"] == 6 * param_counts(cfg)["nonembed"]


def test_model_is_causal():
    cfg = ModelConfig.from_size(32, vocab_size=50, seq_len=16, positions="learned")
    model = Transformer(cfg, generator=torch.Generator().manual_seed(0)).eval()
    ids = torch.randint(0, 50, (2, 16))
    changed = ids.clone()
    changed[:, 10:] = (changed[:, 10:] + 1) % 50
    a, b = model(ids), model(changed)
    assert torch.equal(a[:, :10], b[:, :10])
    assert not torch.allclose(a[:, 10:], b[:, 10:])


def test_init_depends_only_on_the_generator():
    cfg = ModelConfig.from_size(32, vocab_size=50, seq_len=16)
    first = Transformer(cfg, generator=torch.Generator().manual_seed(5))
    torch.manual_seed(123)  # the global RNG must not matter
    second = Transformer(cfg, generator=torch.Generator().manual_seed(5))
    third = Transformer(cfg, generator=torch.Generator().manual_seed(6))
    assert all(torch.equal(p, q) for p, q in zip(first.parameters(), second.parameters()))
    assert not torch.equal(first.blocks[0].mlp.up.weight, third.blocks[0].mlp.up.weight)
    # residual outputs are scaled by 1 / sqrt(2 n_layers) = 1 / sqrt(2) here
    assert first.blocks[0].mlp.up.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert first.blocks[0].mlp.down.weight.std().item() == pytest.approx(0.02 / math.sqrt(2), rel=0.05)


def test_z_loss_adds_mean_squared_log_partition():
    logits = torch.tensor([[[2.0, 0.0, -1.0], [0.5, 0.5, 0.5]]])
    targets = torch.tensor([[0, 2]])
    ce_plain, objective_plain = lm_loss(logits, targets)
    ce, objective = lm_loss(logits, targets, z_loss=1e-2)
    log_z = torch.logsumexp(logits[0], dim=-1)
    expected_ce = ((log_z[0] - 2.0) + (log_z[1] - 0.5)) / 2
    assert ce.item() == pytest.approx(expected_ce.item(), rel=1e-6)
    assert ce_plain.item() == pytest.approx(expected_ce.item(), rel=1e-6) == objective_plain.item()
    assert objective.item() == pytest.approx(expected_ce.item() + 1e-2 * (log_z**2).mean().item(), rel=1e-6)


def test_cosine_schedule_values():
    lrs = lr_schedule(110, lr=1.0, schedule="cosine", warmup_steps=10, min_lr_frac=0.1)
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[-1] == pytest.approx(0.1)
    assert lrs[59] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert np.all(np.diff(lrs[10:]) < 0)


@pytest.mark.parametrize("shape", ["linear", "1-sqrt"])
def test_wsd_agrees_with_constant_trunk_until_decay(shape):
    total, warmup = 100, 7
    wsd = lr_schedule(total, lr=2.0, schedule="wsd", warmup_steps=warmup, decay_frac=0.2, decay_shape=shape)
    trunk = lr_schedule(300, lr=2.0, schedule="constant", warmup_steps=warmup)
    start = decay_start(total, 0.2)
    assert start == 80
    assert np.array_equal(wsd[:start], trunk[:start])
    assert wsd[start - 1] == 2.0 and wsd[-1] == pytest.approx(0.2)
    decayed_half_way = 0.5 if shape == "linear" else math.sqrt(0.5)  # progress 10/20 through the decay
    assert wsd[start + 9] == pytest.approx(2.0 - 1.8 * decayed_half_way)
    assert np.all(trunk[warmup:] == 2.0)


def test_schedule_errors_name_the_setting():
    with pytest.raises(UserError, match="warmup_steps"):
        lr_schedule(10, lr=1.0, schedule="wsd", warmup_steps=9, decay_frac=0.5)
    with pytest.raises(UserError, match="schedule"):
        lr_schedule(10, lr=1.0, schedule="step", warmup_steps=1)
