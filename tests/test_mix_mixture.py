"""Mixtures: validation messages, ids, epochs, and the sampler's per-group accounting."""

import numpy as np
import pytest

from isoflop.config import validate_config
from isoflop.errors import UserError
from isoflop.mix.mixture import check_config, check_epochs, config_groups, mixture_id, resolve
from isoflop.plan import make_plan, stage_ids
from isoflop.tokens import write_groups
from test_train_loop import make_spec, tokens_dir  # noqa: F401 (tokens_dir is a fixture)

META = {"domains": {"code": {"train_tokens": 6000}, "docs": {"train_tokens": 3000}, "tests": {"train_tokens": 1000}}}


@pytest.mark.parametrize(("mixture", "message"), [
    ({"code": 0.5, "docs": 0.7, "tests": -0.2}, "mix.mixture.tests: weight -0.2 is negative"),
    ({"code": 0.5, "web": 0.5}, "mix.mixture.web: unknown group 'web'; the groups are ['code', 'docs', 'tests']"),
    ({"code": 0.5, "docs": 0.4}, "mix.mixture: weights sum to 0.9, not 1 (within 1e-06)"),
    ("balanced", "mix.mixture = 'balanced': expected one of ['natural', 'uniform'] or explicit weights"),
])
def test_an_invalid_mixture_stops_at_parse_time_naming_the_key_and_the_group(mixture, message):
    config = validate_config({"mix": {"mixture": mixture}})
    with pytest.raises(UserError) as err:
        check_config(config)
    assert str(err.value) == message


def test_weights_summing_to_one_within_the_tolerance_pass():
    weights = resolve({"code": 0.5, "docs": 0.3, "tests": 0.2 + 5e-7}, META, "k")
    assert weights == {"code": 0.5, "docs": 0.3, "tests": 0.2 + 5e-7}
    with pytest.raises(UserError, match=r"^k: weights sum to 1.000002, not 1"):
        resolve({"code": 0.5, "docs": 0.3, "tests": 0.200002}, META, "k")


def test_a_group_without_training_tokens_is_refused():
    meta = {"domains": {**META["domains"], "tests": {"train_tokens": 0}}}
    with pytest.raises(UserError) as err:
        resolve("uniform", meta, "mix.mixtures.uniform")
    assert str(err.value) == "mix.mixtures.uniform.tests: group 'tests' has no training tokens"


def test_named_mixtures_and_ids():
    assert resolve("natural", META, "k") == {"code": 0.6, "docs": 0.3, "tests": 0.1}
    assert resolve("uniform", META, "k") == {"code": 1 / 3, "docs": 1 / 3, "tests": 1 / 3}
    # an explicit mixture names only the groups it weighs; its id is that of the same weights in any order
    explicit = resolve({"docs": 0.25, "code": 0.75}, META, "k")
    assert explicit == {"code": 0.75, "docs": 0.25, "tests": 0.0}
    assert mixture_id(explicit) == mixture_id({"tests": 0.0, "docs": 0.25, "code": 0.75})
    assert mixture_id(explicit) != mixture_id(resolve("natural", META, "k"))


def test_a_mixture_repeating_a_group_past_max_epochs_is_refused_or_reported():
    weights = {"code": 0.2, "docs": 0.2, "tests": 0.6}  # 20,000 tokens: tests seen 12 times
    with pytest.raises(UserError) as err:
        check_epochs(weights, 20_000, META, max_epochs=4, allow=False, key="mix.mixture")
    assert str(err.value) == ("mix.mixture.tests: 20,000 training tokens would repeat group 'tests' 12.00 times, "
                              "more than mix.max_epochs = 4 (or set mix.allow_repeats)")
    epochs = check_epochs(weights, 20_000, META, max_epochs=4, allow=True, key="mix.mixture")
    assert epochs == pytest.approx({"code": 20_000 * 0.2 / 6000, "docs": 20_000 * 0.2 / 3000, "tests": 12.0})


def test_without_a_mixture_the_run_ids_do_not_change_and_with_one_they_do():
    base = validate_config({})
    ids = stage_ids(base, {"stdlib": "py"})
    assert set(ids) == {"corpus", "curated", "tokens"}  # no new id: plan.json of an existing study is unchanged
    plain = make_plan(base, ids["tokens"])["runs"]
    named = make_plan(validate_config({"mix": {"mixture": "natural"}}), ids["tokens"])["runs"]
    uniform = make_plan(validate_config({"mix": {"mixture": "uniform"}}), ids["tokens"])["runs"]
    assert sorted(plain) == sorted(named)  # the natural mixture of the domains is today's mixture
    assert not set(plain) & set(uniform)
    clusters = validate_config({"mix": {"groups": "clusters"}})
    assert config_groups(clusters) == [f"c{i}" for i in range(16)]
    assert "groups" in stage_ids(clusters, {"stdlib": "py"})


def test_the_sampler_counts_the_tokens_it_drew_per_group(tmp_path):
    """Tokens drawn per group, replayed from (seed, step), match the batches actually drawn."""
    import pandas as pd

    from isoflop.tokens import train_tokenizer
    from isoflop.train.data import BatchSampler

    texts = [("x" * (50 + i)) for i in range(40)] + [("yz " * (40 + i)) for i in range(40)]
    docs = pd.DataFrame({"id": [f"d{i:03d}" for i in range(80)], "group": ["a"] * 40 + ["b"] * 40, "text": texts})
    tokenizer = train_tokenizer(docs["text"].tolist(), docs["id"].tolist(), 270, 10_000)
    write_groups(tokenizer, docs, docs, "group", tmp_path)
    sampler = BatchSampler(tmp_path, {"a": 0.25, "b": 0.75}, seq_len=8, batch_size=16, seed=3)
    arrays = {name: np.asarray(array) for name, array in zip(sampler.domains, sampler.arrays)}
    drawn = {"a": 0, "b": 0}
    for step in range(30):
        for row in sampler.batch(step).numpy():
            # a window is a slice of exactly one group's array (the two groups' texts share no token)
            group = "a" if np.isin(row, arrays["a"]).all() and not np.isin(row, arrays["b"]).all() else "b"
            drawn[group] += 8
    assert sampler.tokens_drawn(30) == drawn
    assert sum(drawn.values()) == 30 * 16 * 8
    assert 0.15 < drawn["a"] / (30 * 16 * 8) < 0.35


def test_a_scaling_grid_the_ladder_cannot_hold_stops_at_parse_time():
    config = validate_config({"plan": {"ladder": [16, 32]},
                              "mix": {"search": {"enabled": True}, "scaling": {"sizes_per_budget": 3}}})
    with pytest.raises(UserError) as err:
        check_config(config)
    assert str(err.value) == ("mix.scaling: config key 'plan.sizes_per_budget' = 3 exceeds the 2 shapes of "
                              "plan.ladder; allowed values: 1..2")
    check_config(validate_config({"plan": {"ladder": [16, 32]}, "mix": {"search": {"enabled": True},
                                                                       "scaling": {"ladder": [16, 32, 48]}}}))


def test_a_run_records_tokens_and_epochs_per_group_and_its_window_losses(tmp_path, tokens_dir):
    import pandas as pd

    from isoflop.train.loop import train_run

    spec = {**make_spec(steps=30), "mixture": {"code": 0.25, "prose": 0.75}}
    with_windows = train_run(spec, tokens_dir, tmp_path / "a", progress=False, window_losses=True)
    plain = train_run(spec, tokens_dir, tmp_path / "b", progress=False)
    assert with_windows["val_loss_by_domain"] == plain["val_loss_by_domain"]  # the extra pass changes nothing
    drawn = with_windows["tokens_by_domain"]
    assert sum(drawn.values()) == 30 * 8 * 32 and 0.15 < drawn["code"] / (30 * 8 * 32) < 0.35
    assert with_windows["epochs_by_domain"] == {group: drawn[group] / 20_000 for group in drawn}
    assert with_windows["val_loss_natural"] == pytest.approx(sum(with_windows["val_loss_by_domain"].values()) / 2)
    windows = pd.read_parquet(tmp_path / "a" / "eval_windows.parquet")
    assert windows.groupby("domain").size().to_dict() == {"code": 1024 // 32, "prose": 1024 // 32}
    means = windows.groupby("domain")["loss"].mean().to_dict()
    assert means == pytest.approx(with_windows["val_loss_by_domain"], abs=1e-5)
    assert not (tmp_path / "b" / "eval_windows.parquet").exists()

    diverged = train_run(make_spec(steps=40, lr=1e30, grad_clip=0.0), tokens_dir, tmp_path / "c", progress=False,
                         window_losses=True)
    assert diverged["status"] == "diverged"
    assert len(pd.read_parquet(tmp_path / "c" / "eval_windows.parquet")) == 0
