"""muP (Yang et al. 2022, Tensor Programs V): the coordinate check across widths, equality with the standard
parametrisation at the base width, the per-layer learning rates, and the spec and plan keys."""

import numpy as np
import pytest
import torch

from isoflop.config import validate_config
from isoflop.errors import UserError
from isoflop.plan import make_plan
from isoflop.train.model import ModelConfig, Transformer, lm_loss
from isoflop.train.optim import make_optimizer, parameter_groups, set_lr
from isoflop.train.spec import RunSpec, TrainConfig

WIDTHS = (64, 128, 256, 512)
BASE = 64
VOCAB = 64


def _model(width: int, base: int | None, **options) -> Transformer:
    """Two layers at every width (the coordinate check varies width alone), heads 16 wide."""
    cfg = ModelConfig(d_model=width, n_layers=2, n_heads=width // 16, vocab_size=VOCAB, seq_len=32, **options)
    return Transformer(cfg, generator=torch.Generator().manual_seed(0), mup_base_d_model=base)


def _coordinates(width: int, base: int | None, steps: int = 10, lr: float = 0.02) -> dict[str, float]:
    """Mean |coordinate| of the residual stream after each block and of the logits, after `steps` AdamW steps
    at the same lr, on batches whose odd tokens follow from the even ones (something to learn)."""
    model = _model(width, base)
    train = TrainConfig(tokens=1, batch_size=8, lr=lr, warmup_steps=0, seed=0, weight_decay=0.0)
    optimizer = make_optimizer(model, train)
    data = torch.randint(0, VOCAB, (steps + 1, 8, 33), generator=torch.Generator().manual_seed(1))
    data[:, :, 1::2] = (data[:, :, 0:-1:2] * 7 + 3) % VOCAB
    for step in range(steps):
        set_lr(optimizer, lr)
        lm_loss(model(data[step, :, :-1]), data[step, :, 1:])[1].backward()
        optimizer.step()
        optimizer.zero_grad()
    sizes = {}
    for index, block in enumerate(model.blocks):
        block.register_forward_hook(lambda _m, _i, out, key=f"block{index}": sizes.__setitem__(key, out.abs().mean().item()))
    with torch.no_grad():
        sizes["logits"] = model(data[-1, :, :-1]).abs().mean().item()
    return sizes


def _slopes(base: int | None) -> dict[str, float]:
    """Per layer, the slope of log(mean |coordinate|) against log(width) over WIDTHS."""
    rows = [_coordinates(width, base if base is None else BASE) for width in WIDTHS]
    return {key: np.polyfit(np.log(WIDTHS), np.log([row[key] for row in rows]), 1)[0] for key in rows[0]}


@pytest.mark.slow  # about 25 CPU-seconds: 80 training steps at widths up to 512
def test_coordinate_check_activations_stay_order_one_under_mup_and_grow_under_standard():
    """Measured (10 steps at lr 0.02, widths 64-512): standard slopes 2.49, 2.43 (residual stream after each
    block) and 1.04 (logits); muP -0.41, -0.41 and -0.02. The logits, which muP's output multiplier governs, are
    flat; the residual stream drifts down slowly at these small widths (finite-width corrections; 8x the width
    costs it a factor 0.43, against a factor 170 up under the standard parametrisation)."""
    standard, mup = _slopes(None), _slopes(BASE)
    assert all(standard[key] > 2.0 for key in ("block0", "block1")) and standard["logits"] > 0.3, standard
    assert abs(mup["logits"]) < 0.1, mup
    assert all(abs(mup[key]) < 0.5 for key in ("block0", "block1")), mup


@pytest.mark.parametrize("options", [{}, {"tie_embeddings": True, "positions": "learned", "qk_norm": True}])
def test_mup_at_its_base_width_is_the_standard_model(options):
    """Same init, same logits, same param groups' lrs: a learning rate tuned at the base width is the same run."""
    ids = torch.randint(0, VOCAB, (2, 32), generator=torch.Generator().manual_seed(3))
    standard, mup = _model(BASE, None, **options), _model(BASE, BASE, **options)
    for (name, a), (_, b) in zip(standard.named_parameters(), mup.named_parameters(), strict=True):
        assert torch.equal(a, b), name
    torch.testing.assert_close(mup(ids), standard(ids), rtol=0, atol=1e-6)
    assert all(group["lr_scale"] == 1.0 for group in parameter_groups(mup, 0.1))


def test_mup_scales_hidden_init_and_lr_by_width_and_nothing_else():
    wide = _model(4 * BASE, BASE)
    groups = parameter_groups(wide, 0.1)
    scaled = {id(p) for g in groups if g["lr_scale"] == 0.25 for p in g["params"]}
    names = {name for name, p in wide.named_parameters() if id(p) in scaled}
    assert names == {f"blocks.{i}.{m}" for i in range(2)
                     for m in ("attn.qkv.weight", "attn.proj.weight", "mlp.up.weight", "mlp.down.weight")}
    assert {g["lr_scale"] for g in groups} == {1.0, 0.25}
    assert [g["weight_decay"] for g in groups if g["lr_scale"] == 1.0] == [0.1, 0.0]  # embed/head; norms
    # hidden init std shrinks by sqrt(4) = 2 against the standard init at the same width; the embedding's does not
    standard = _model(4 * BASE, None)
    ratio = standard.blocks[0].mlp.up.weight.std() / wide.blocks[0].mlp.up.weight.std()
    assert abs(ratio - 2.0) < 0.02
    assert abs(standard.embed.weight.std() / wide.embed.weight.std() - 1) < 1e-6
    optimizer = make_optimizer(wide, TrainConfig(tokens=1, batch_size=1, lr=0.01, warmup_steps=0, seed=0))
    set_lr(optimizer, 0.008)
    assert sorted(g["lr"] for g in optimizer.param_groups) == [0.002, 0.008, 0.008]


def test_standard_groups_are_the_two_of_before():
    """Matrices decayed, vectors not, one lr: the optimizer (and so every standard run) is unchanged."""
    model = _model(128, None)
    groups = parameter_groups(model, 0.1)
    assert [(g["weight_decay"], g["lr_scale"]) for g in groups] == [(0.1, 1.0), (0.0, 1.0)]
    assert [p.dim() >= 2 for p in groups[0]["params"]] == [True] * len(groups[0]["params"])


def test_spec_keys_enter_only_with_mup_and_errors_name_the_key():
    base = {"tokens": 100, "batch_size": 2, "lr": 0.01, "warmup_steps": 0, "seed": 0}
    spec = {"model": ModelConfig.from_size(32, 16, 8).to_dict(), "mixture": {"a": 1.0}, "train": base}
    standard = RunSpec.from_dict(spec).to_dict()["train"]
    assert "parametrization" not in standard and "mup_base_d_model" not in standard
    mup = {**base, "parametrization": "mup", "mup_base_d_model": 32}
    parsed = RunSpec.from_dict({**spec, "train": mup})
    assert parsed.train.mup_base == 32 and parsed.to_dict()["train"]["parametrization"] == "mup"
    with pytest.raises(UserError, match="train.parametrization"):
        TrainConfig(**{**base, "parametrization": "muP"})
    with pytest.raises(UserError, match="train.mup_base_d_model"):
        TrainConfig(**{**base, "parametrization": "mup"})


def test_plan_with_mup_changes_run_ids_and_drops_the_width_rule():
    standard = make_plan(validate_config({}), "tok")["runs"].values()
    config = validate_config({"train": {"parametrization": "mup"}})
    mup = list(make_plan(config, "tok")["runs"].values())
    assert not {r["run_id"] for r in standard} & {r["run_id"] for r in mup}
    assert all("parametrization" not in r["spec"]["train"] for r in standard)
    for run in mup:
        assert run["spec"]["train"]["lr"] == config["train"]["lr"]  # muP scales per layer, not per run
        assert run["spec"]["train"]["mup_base_d_model"] == config["train"]["lr_reference_d_model"]
    with pytest.raises(UserError, match="train.parametrization"):
        validate_config({"train": {"parametrization": "ntk"}})


def test_a_mup_spec_reaches_the_trainer(tmp_path):
    """The spec keys build a muP model and its per-layer learning rates in the workflow's trainer."""
    import json

    from isoflop.train.loop import Trainer

    tokens = tmp_path / "tokens"
    (tokens / "web").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rng.integers(0, VOCAB, 4096, dtype=np.uint16).tofile(tokens / "web" / "train.bin")
    rng.integers(0, VOCAB, 512, dtype=np.uint16).tofile(tokens / "web" / "val.bin")
    counts = {"train_tokens": 4096, "val_tokens": 512, "train_bytes": 4096, "val_bytes": 512}
    (tokens / "meta.json").write_text(json.dumps({"vocab_size": VOCAB, "eos_id": 0, "dtype": "uint16",
                                                  "domains": {"web": counts}, "fingerprint": "mup"}))
    train = {"tokens": 4 * 4 * 32, "batch_size": 4, "lr": 0.01, "warmup_steps": 0, "seed": 0,
             "schedule": "constant", "parametrization": "mup", "mup_base_d_model": 32}
    spec = {"model": ModelConfig.from_size(64, VOCAB, 32).to_dict(), "mixture": {"web": 1.0}, "train": train}
    trainer = Trainer(spec, tokens, tmp_path / "run", threads=1, device="cpu", progress=False, own_process=False)
    assert trainer.model.width_multiplier == 2.0 and trainer.spec["train"]["parametrization"] == "mup"
    trainer.train_step(0)
    assert sorted({group["lr"] for group in trainer.optimizer.param_groups}) == [0.005, 0.01]
