"""The search's verdicts that must hold beyond its own target: seeds' losses per compared mixture, and a
predictor that ranks nothing does not propose."""

import numpy as np
import pytest

from isoflop.mix.search import proposer, uninformative, verified_losses


def _result(target_losses: dict, natural: float, status="ok"):
    return {"status": status, "val_loss_by_domain": target_losses, "val_loss_natural": natural}


def test_a_mixture_s_seeds_give_its_mean_target_natural_and_group_losses():
    results = [_result({"a": 3.0, "b": 2.0}, 2.6), _result({"a": 3.2, "b": 2.2}, 2.8),
               _result(None, None, status="diverged")]
    losses = verified_losses(results, "mean")
    assert losses["targets"] == [2.5, 2.7, None]  # each seed's target; a diverged seed has none
    assert losses["target"] == pytest.approx(2.6) and losses["natural"] == pytest.approx(2.7)
    assert losses["groups"] == pytest.approx({"a": 3.1, "b": 2.1})
    # results written before val_loss_natural existed: the natural loss is unknown, not a wrong number
    assert verified_losses([{"status": "ok", "val_loss_by_domain": {"a": 1.0}}], "mean")["natural"] is None


def _fit(held_out: dict, spearman: dict):
    return {"round": 1, "held_out": {m: {"predicted": p} for m, p in held_out.items()},
            "cross_validated": {m: {"spearman": s} for m, s in spearman.items()}}


def test_a_predictor_constant_on_the_held_out_proxies_is_uninformative_and_another_proposes():
    # round 1 of studies/mixture.yaml: LightGBM predicted one value for all 16 held-out proxies
    fit = _fit({"lgbm": [3.1] * 16, "mixing-law": list(np.linspace(3, 3.2, 16)),
                "ridge": list(np.linspace(3.2, 3, 16))}, {"lgbm": 0.9, "mixing-law": 0.4, "ridge": 0.6})
    fit["uninformative"] = uninformative(fit)
    assert fit["uninformative"] == ["lgbm"]
    assert proposer(fit, "lgbm") == "ridge"  # the informative predictor with the best cross-validated Spearman
    assert proposer(fit, "mixing-law") == "mixing-law"
    # round 0 has no held-out proxies: a predictor whose cross-validated Spearman is undefined is constant
    first = _fit({}, {"lgbm": float("nan"), "mixing-law": 0.4, "ridge": 0.6})
    first["held_out"] = {}
    assert uninformative(first) == ["lgbm"]
    # with every predictor constant, the configured one still proposes (the report says so)
    none = {**fit, "uninformative": ["lgbm", "mixing-law", "ridge"]}
    assert proposer(none, "lgbm") == "lgbm"


def test_the_natural_target_is_the_loss_on_the_validation_set_in_the_corpus_s_proportions():
    from isoflop.mix.search import target_groups, target_loss

    result = _result({"a": 3.0, "b": 2.0}, 2.75)  # a holds 3/4 of the training tokens
    assert target_loss(result, "natural") == 2.75 and target_loss(result, "mean") == 2.5
    assert target_groups("natural", ["b", "a"]) == ["a", "b"]
