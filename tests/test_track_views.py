"""The MLflow view agrees with the report: FLOPs in floating point, the fit run's decision as metrics, the report's
summary as its description."""

from itertools import pairwise

import numpy as np
import pandas as pd
import pytest

from isoflop.track import _metrics, fit_values, report_summary


def test_flops_are_monotone_and_end_at_the_run_s_compute_where_tokens_times_c_overflows_int64():
    # a run's C is an integer in the plan: 5M tokens times C = 3e15 is past 2^63 (9.2e18), where int64 wrapped
    D, C = 5_000_000, 3_000_000_000_000_000
    tokens = np.linspace(0, D, 11).astype(np.int64)[1:]
    assert float(tokens[-1]) * C > 2.0**63
    curve = pd.DataFrame({"kind": "train", "step": np.arange(1, 11), "tokens": tokens, "lr": 0.01,
                          "train_loss": np.linspace(5, 3, 10), "domain": None, "val_loss": np.nan, "val_bpb": np.nan})
    run = {"run_id": "r", "budget": 1e25, "N": 1e12, "D": D, "C": C,
           "params": {"total": 1e12, "nonembed": 1e12, "nonembed_head": 1e12}}
    metrics = _metrics(run, {"status": "ok"}, curve, 0.0, 10.0)
    flops = [m.value for m in sorted((m for m in metrics if m.key == "flops"), key=lambda m: m.step)]
    assert len(flops) == 10 and all(b > a > 0 for a, b in pairwise(flops))
    assert flops[-1] == C and flops[0] == pytest.approx(C / 10)


def test_the_fit_run_carries_the_decision_and_its_description_opens_with_the_summary():
    from test_fit_envelope_study import ladder_study

    from isoflop.fit import fit_study

    laws = fit_study(ladder_study(), bootstrap=30, seed=0)
    values = fit_values(laws)
    nxt, verdict = laws["next_budget"], laws["verdict"]
    assert values["trusted.approach"] == {"isoflop": 2, "chinchilla": 3}[verdict["approach"]]
    assert values["trusted.backtest_error"] == laws["backtest"][verdict["approach"]]["mean_abs_rel_error"]
    assert (values["next.N_opt"], values["next.D_opt"], values["next.loss"]) == (nxt["N_opt"], nxt["D_opt"], nxt["loss"])
    assert values["next.N_opt.lo95"] < values["next.N_opt"] < values["next.N_opt.hi95"]
    assert values["next.loss.pred_lo95"] <= values["next.loss.lo95"]
    report = ("# Scaling-law study `s`\n\n10 runs.\n\n## Summary\n\n- **Recommended** N* = 1\n- From approach 2\n\n"
              "## Warnings\n\n- a warning\n\n## Compute-optimal allocation\n\ntable\n")
    assert report_summary(report) == "- **Recommended** N* = 1\n- From approach 2\n\n**Warnings**\n\n- a warning"
