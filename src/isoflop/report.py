"""The study's written summary (`report.md`) and its figures, from runs.parquet, laws.json, curation.json,
the plan, the runs' curves, the trunks' results and the jobs' benchmark files.

Every number here is read from those files (the report rule declares each one), so the report can be
regenerated from logged data alone.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from isoflop.curate.report import curation_section
from isoflop.fit.diagnostics import verdict as lack_of_fit_verdict
from isoflop.fit.frontier import tokens_per_param_curve
from isoflop.fit.study import APPROACHES as APPROACH_NAMES
from isoflop.fit.study import NEXT_BUDGET_FACTOR, finished, recommendation, trust_horizon
from isoflop.fit.verdict import trusted_approach
from isoflop.tokens import read_meta
from isoflop.workflow import read_json

log = logging.getLogger("isoflop.report")


def _fmt(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, (int, float)) and (abs(value) >= 1e5 or 0 < abs(value) < 1e-3):
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}g}"


def _interval(ci) -> str:
    if not ci or len(ci) != 2:
        return "n/a"
    if ci[0] is None and ci[1] is None:
        return "unbounded"
    return f"[{_fmt(ci[0])}, {_fmt(ci[1])}]"


def _param_table(law: dict, names: list[str]) -> list[str]:
    lines = ["| parameter | estimate | 95% interval |", "|---|---|---|"]
    params, ci = law.get("params", {}), law.get("ci95", {})
    for name in names:
        if name in params:
            lines.append(f"| {name} | {_fmt(params[name])} | {_interval(ci.get(name))} |")
    return lines


def edge_warnings(laws: dict) -> list[str]:
    """One warning per budget whose IsoFLOP minimum is not strictly inside its sizes."""
    out = []
    for entry in (laws.get("isoflop") or {}).get("budgets", []):
        if entry.get("minimum_at_edge"):
            out.append(
                f"The IsoFLOP minimum of budget C = {entry['C']:.3g} lies at the edge of its grid (or the curve is "
                "not convex): its N* is an extrapolation. Move plan.ladder / plan.tokens_per_param so the sizes "
                "bracket the optimum."
            )
    return out


LAW_NAMES = {**APPROACH_NAMES, "overtrained": "over-training law L(C, M) (Gadre et al.)"}


def _pct(value) -> str:
    return "n/a" if value is None else f"{value:.2%}"


def backtest_lines(laws: dict) -> list[str]:
    """The backtest table (per law and fold: budgets fitted and predicted, relative error, signed bias and the
    coverage of 90% and 95% prediction intervals) and the law forms ranked by backtest error."""
    backtests = laws.get("backtest") or {}
    if not any(result.get("n_predictions") for result in backtests.values()):
        return []
    lines = ["## Backtest: laws fitted on the smaller budgets predicting every larger one", "",
             "Expanding window: fold k fits each law on the k smallest budgets and predicts every run of every larger "
             "budget, each with its 90% and 95% **prediction** intervals (the law's bootstrap fits plus a new run's "
             "noise). An honest law's coverage is near 90% and 95%; a bias far from 0 is a law that keeps missing "
             "the same way. Coverage says little without the width: the 95% width is the interval's mean width "
             "relative to the prediction.", "",
             "| law | fitted budgets (largest) | predicted runs | furthest ahead | mean abs. rel. error | bias | "
             "coverage 90% | coverage 95% | 95% width |", "|---|---|---|---|---|---|---|---|---|"]
    for name, result in backtests.items():
        for fold in result.get("folds", []):
            fitted = f"{len(fold['train_budgets'])} ({_fmt(fold['train_budgets'][-1])})"
            if "error" in fold:
                lines.append(f"| {name} | {fitted} | {fold['n_predicted']} | | not fitted: {fold['error']} | | | | |")
                continue
            lines.append(f"| {name} | {fitted} | {fold['n_predicted']} | {fold.get('factor', float('nan')):.3g}x | "
                         f"{_pct(fold['mean_abs_rel_error'])} | {fold['bias']:+.2%} | {fold['coverage90']:.0%} | "
                         f"{fold['coverage95']:.0%} | ±{interval_width([fold]) / 2:.1%} |")
        if result.get("n_predictions"):
            lines.append(f"| **{name}, all folds** | | {result['n_predictions']} | | "
                         f"**{_pct(result['mean_abs_rel_error'])}** | {result['bias']:+.2%} | "
                         f"{result['coverage90']:.0%} | {result['coverage95']:.0%} | "
                         f"±{interval_width(result['folds']) / 2:.1%} |")
    ranking = laws.get("backtest_ranking") or []
    if ranking:
        ranked = "; ".join(f"{i + 1}. {LAW_NAMES.get(entry['law'], entry['law'])} {_pct(entry['mean_abs_rel_error'])}"
                           for i, entry in enumerate(ranking))
        lines += ["", f"Law forms ranked by backtest error (mean |relative error| on held-out budgets, not in-sample "
                  f"fit): {ranked}."]
        under = [entry["law"] for entry in ranking if (entry.get("coverage95") or 0) < 0.85]
        if under:
            lines.append(f"The 95% prediction intervals of {', '.join(under)} covered under 85% of the held-out runs: "
                         "too narrow to plan with.")
    return lines + [""]


def interval_width(folds: list[dict]) -> float:
    """The mean width of the 95% prediction intervals of the folds' predictions, relative to the prediction."""
    widths = [(hi - lo) / point for fold in folds for point, lo, hi in
              zip(*(fold.get("predictions", {}).get(key, []) for key in ("predicted", "pred_lo95", "pred_hi95")))]
    return float(np.mean(widths)) if widths else float("nan")


def approaches_lines(laws: dict) -> list[str]:
    """Whether the approaches agree on the N* exponent a beyond their intervals, whether their predicted losses
    differ beyond the seed noise, and which to trust (see `isoflop.fit.study.approaches_comparison`)."""
    comparison = laws.get("approaches")
    if not comparison:
        return []
    stated = "; ".join(f"{APPROACH_NAMES[name]} a = {_fmt(entry['estimate'])} {_interval(entry['ci95'])}"
                       for name, entry in comparison["a"].items())
    lines = ["## Approaches compared", "", f"N* ∝ C^a with 95% confidence intervals: {stated}.", ""]
    for pair in comparison["pairs"]:
        first, second = APPROACH_NAMES[pair["first"]], APPROACH_NAMES[pair["second"]]
        low, high = pair["ci95"]
        if pair["disagree"]:
            lines.append(f"- **{first} and {second} disagree beyond their intervals on a**: the difference "
                         f"{pair['difference']:+.3f} has a 95% interval [{low:+.3f}, {high:+.3f}] that excludes 0.")
        else:
            lines.append(f"- {first} and {second} agree on a within their intervals: the difference "
                         f"{pair['difference']:+.3f} has a 95% interval [{low:+.3f}, {high:+.3f}] that includes 0.")
    gap = comparison.get("loss_at_next_budget")
    if gap:
        noise = ("whether it exceeds the seed noise is unknown: no grid point was trained with several seeds"
                 if gap["noise_threshold"] is None else
                 f"which {'exceeds' if gap['exceeds_noise'] else 'does not exceed'} the seed noise (two single runs "
                 f"differ by up to 2√2 sd = {gap['noise_threshold']:.3g} nats from their seeds alone)")
        lines.append(f"- At C = {_fmt(gap['C'])} approach 2 predicts a compute-optimal loss of {gap['isoflop']:.4g} and "
                     f"approach 3 {gap['chinchilla']:.4g}: a gap of {gap['gap']:+.3g} nats, {noise}.")
    if comparison.get("trust"):
        lines += ["", f"**Trust {APPROACH_NAMES[comparison['trust']]}**, because {comparison['trust_reason']}."]
    return lines + [""]


def schedule_law_lines(laws: dict) -> list[str]:
    """The LR-annealing law per WSD family: its held-out cooldown's predicted against observed final loss, and
    plainly whether to trust it (see `isoflop.fit.schedule`)."""
    law = laws.get("schedule_law")
    if not law or not (law["families"] or law["skipped"]):
        return []
    tolerance = law["tolerance"]
    lines = ["## Schedule law: held-out WSD cooldowns", "",
             f"{law['law']}, lambda = {law['decay_factor']}, fitted per model shape on its trunk's constant phase "
             "and every cooldown but the longest, which it predicts (final train loss: the mean over the last 2% "
             "of steps).", "",
             "| trunk | d_model | held-out run | observed | predicted | rel. error | cooldown curve error | "
             "alpha | warnings |", "|---|---|---|---|---|---|---|---|---|"]
    for trunk_id, family in law["families"].items():
        lines.append(f"| `{trunk_id}` | {family['d_model']} | `{family['held_out']}` | {family['observed_final']:.4f} "
                     f"| {family['predicted_final']:.4f} | {family['rel_error']:+.2%} | "
                     f"{family['cooldown_mean_abs_rel_error']:.2%} | {family['params']['alpha']:.3g} | "
                     f"{len(family['warnings'])} |")
    lines += [f"- skipped: {reason}" for reason in law["skipped"]]
    if law["families"]:
        n = len(law["families"])
        verdict = ("**Trust it** for these shapes: every held-out cooldown within "
                   f"{tolerance:.0%} and every parameter determined." if law["trusted"] else
                   "**Do not trust it** to choose a schedule here: " + (
                       f"only {law['n_within_tolerance']} of {n} held-out cooldowns within {tolerance:.0%} "
                       f"(worst {_pct(law['max_abs_rel_error'])})" if law["n_within_tolerance"] < n else
                       "every held-out cooldown within tolerance, but some parameters are undetermined "
                       "(laws.json warnings)") + ".")
        lines += ["", f"The law predicted {law['n_within_tolerance']} of {n} held-out cooldowns' final loss within "
                  f"{tolerance:.0%}. {verdict}"]
        for factor, error in law.get("decay_factor_sensitivity", {}).items():
            if error is not None and law["max_abs_rel_error"] is not None:
                hinges = ("the error hinges on the annealing memory" if error < law["max_abs_rel_error"] / 2 else
                          "changing it does not rescue the law")
                lines.append(f"With lambda = {factor} instead (a diagnostic, not the fitted law) the worst held-out "
                             f"error is {_pct(error)}: {hinges}.")
    return lines + [""]


def seed_noise_lines(laws: dict) -> list[str]:
    """The run-to-run noise measured from replicated grid points, or a note that it was not measured."""
    noise = laws.get("seed_noise")
    lines = ["## Seed noise", ""]
    if not noise:
        return lines + ["No grid point was trained with several seeds (`plan.seeds`, with `plan.replicated_budgets` for only the smallest budgets), so "
                        "prediction intervals take the noise from the residuals alone and no comparison can say whether "
                        "it exceeds the noise.", ""]
    lines += [f"{noise['n_points']} grid points trained with several seeds"
              f"{', ' + noise['scope'] + ',' if noise.get('scope') else ''} give a run-to-run standard deviation of "
              f"{noise['sd']:.4g} nats {_interval(noise['ci95_sd'])} ({noise['sd_log']:.3%} of the loss; {noise['dof']} "
              "degrees of freedom). Every prediction interval is at least this wide in its noise term, and the "
              "IsoFLOP figure draws it as bands of ±1.96 sd around each parabola.", "",
              "| budget | N | seeds | mean loss | sd |", "|---|---|---|---|---|"]
    for point in noise["points"]:
        lines.append(f"| {_fmt(point['budget'])} | {_fmt(point['N'])} | {point['n_seeds']} | {point['mean']:.4f} | "
                     f"{point['sd']:.4f} |")
    return lines + [""]


def loss_to_loss_lines(laws: dict) -> list[str]:
    """The shifted power laws from the mixed validation loss to each domain's (Brandfonbrener et al. 2024)."""
    transfer = laws.get("loss_to_loss") or {}
    if not transfer:
        return []
    lines = ["## Loss-to-loss between validation domains", "",
             "L_y = K (L_x - E_x)^kappa + E_y from the mixed validation loss x to each domain's loss y over the same "
             "runs (Brandfonbrener et al. 2024); E_x and E_y are each loss's own Chinchilla E. The held-out column "
             "fits on every budget but the largest and predicts that budget's domain losses from its mixed ones.", "",
             "| domain | K | kappa | E_x | E_y | rms (nats) | held-out mean abs. rel. error |", "|---|---|---|---|---|---|---|"]
    for name, law in transfer.items():
        p, ci = law["params"], law["ci95"]
        held = law.get("held_out")
        lines.append(f"| {name} | {_fmt(p['K'])} {_interval(ci['K'])} | {_fmt(p['kappa'])} {_interval(ci['kappa'])} | "
                     f"{_fmt(p['E_x'])} | {_fmt(p['E_y'])} | {law['rms_nats']:.4f} | "
                     f"{_pct(held['mean_abs_rel_error']) if held else 'n/a'} |")
    return lines + [""]


def extrapolation_lines(laws: dict) -> list[str]:
    """The largest budget held out: each law refitted on the budgets 3x or more below it predicts its runs."""
    ext = laws.get("extrapolation")
    if not ext or not any((ext.get("laws") or {}).values()):
        return []
    factor = f", {ext['factor']:.3g}x above the largest fitted one" if ext.get("factor") else ""
    lines = ["## Extrapolation check", "",
             f"Laws fitted on the {ext.get('n_train_runs')} runs of the smaller budgets predict the "
             f"{ext.get('n_held_out_runs')} runs of the held-out largest budget "
             f"({_fmt(ext.get('held_out_budget'))} FLOPs{factor}), each with its 95% prediction interval:", ""]
    for law_name, summary in (ext.get("laws") or {}).items():
        if summary:
            inside = (f"; {summary['coverage95']:.0%} of the runs inside their 95% prediction intervals"
                      if "coverage95" in summary else "")
            lines.append(f"- {law_name}: mean |relative error| of the loss {summary['mean_abs_rel_error']:.2%}"
                         f"{inside}")
        else:
            lines.append(f"- {law_name}: could not be fitted on the smaller budgets")
    held = [row for row in ext.get("runs", [])
            if any("pred_lo95" in (row.get(name) or {}) for name in ("chinchilla", "isoflop"))]
    if held:
        lines += ["", "| run | N | observed | law | predicted | 95% confidence interval | 95% prediction interval | "
                  "inside |", "|---|---|---|---|---|---|---|---|"]
        for row in held:
            for name in ("chinchilla", "isoflop"):
                entry = row.get(name)
                if entry:
                    lines.append(f"| `{row['run_id']}` | {_fmt(row['N'])} | {row['observed']:.4f} | {name} | "
                                 f"{entry['predicted']:.4f} | {_interval([entry['conf_lo95'], entry['conf_hi95']])} | "
                                 f"{_interval([entry['pred_lo95'], entry['pred_hi95']])} | "
                                 f"{'yes' if entry['inside_pred95'] else '**no**'} |")
    return lines + [""]


def lack_of_fit_lines(laws: dict) -> list[str]:
    """Per law: whether its residuals bend against log C over the fitted range, and how far to trust it."""
    tests = laws.get("lack_of_fit") or {}
    if not tests:
        return []
    lines = ["## Lack of fit", "", "A power law is a line in log-log space; residuals that bend against log C say the "
             "form is wrong there (power laws bend at small scale, which is where CPU studies live). Tests: the "
             "t test of a quadratic term in ln C fitted to the log residuals, and a runs test of their signs in "
             "order of C.", ""]
    lines += [f"- {lack_of_fit_verdict(LAW_NAMES.get(name, name), test)}" for name, test in tests.items()
              if laws.get(name)]
    return lines + [""]


def tokens_per_param_lines(laws: dict) -> list[str]:
    """D*/N* at the next budget from each approach fitted, with its 95% interval (over each bootstrap fit's own
    ratio), and how far apart the approaches are: the ratio is what a lab sizes its next run by."""
    nxt = laws.get("next_budget")
    if not nxt:
        return []
    ratios = {}
    for name in APPROACH_NAMES:
        if laws.get(name):
            point, band = tokens_per_param_curve(laws[name], np.array([nxt["C"]]))
            ratios[name] = (float(point[0]), None if band is None else [float(band[0, 0]), float(band[1, 0])])
    if not ratios:
        return []
    stated = "; ".join(f"{APPROACH_NAMES[name]} {ratio:.1f} {_interval(ci)}" for name, (ratio, ci) in ratios.items())
    lines = [f"Tokens per parameter D*/N* at C = {_fmt(nxt['C'])}: {stated}."]
    values = [ratio for ratio, _ in ratios.values()]
    if len(values) > 1:
        lines.append(f"The approaches imply {min(values):.1f} to {max(values):.1f} tokens per parameter "
                     f"(a factor {max(values) / min(values):.1f}); Hoffmann et al. found about 20.")
    return [" ".join(lines), ""]


def envelope_lines(envelope: dict | None) -> list[str]:
    """The report's approach 1 section: the envelope's N* law and the FLOPs per token that turn N* into D*."""
    if not envelope:
        return []
    per_token = envelope["flops_per_token"]
    lines = ["### Envelope approach 1: the lowest loss at each compute, and the size reaching it", ""]
    lines += _param_table(envelope, ["a", "k_N"])
    lines += ["", f"N* = k_N C^a fitted to the envelope of {envelope['n_runs']} model sizes' final losses (each size "
              f"trained at 2 or more budgets; intervals resample sizes). D* = C / (c N*^p) with the runs' own FLOPs "
              f"per token, c = {_fmt(per_token['c'])} and p = {_fmt(per_token['p'])}.", ""]
    return lines


def time_lines(benchmarks: dict[str, list], runs: pd.DataFrame, trunk_results: list) -> list[str]:
    """Where the time went: each stage's summed job wall time (Snakemake's benchmark files, by stage) and, for
    training, the time inside the training loop; the difference is the overhead of many small jobs."""
    stages = {stage: [float(pd.read_csv(path, sep="\t")["s"].iloc[0]) for path in paths]
              for stage, paths in benchmarks.items()}
    in_loop = float(runs["train_seconds"].sum()) + sum(read_json(path)["train_seconds"] for path in trunk_results)
    lines = ["### Where the time went", "", "| stage | jobs | job wall time (s) |", "|---|---|---|"]
    for stage, seconds in stages.items():
        lines.append(f"| {stage} | {len(seconds)} | {sum(seconds):.0f} |")
    training = sum(sum(stages.get(stage, [])) for stage in ("train", "trunks"))
    if training:
        lines += ["", f"Training jobs ran {training:.0f} s, {in_loop:.0f} s of it inside the training loop: "
                  f"{training - in_loop:.0f} s ({(training - in_loop) / training:.1%}) went to process start, "
                  "imports, data loading, evaluation, checkpoints and (with tracking.live) MLflow logging."]
    return lines


def ground_truth_lines(runs: pd.DataFrame, chinchilla: dict, source: dict | None, mixed: bool) -> list[str]:
    """For a study on the synthetic Markov source (`source`, its config; None for other studies): the fitted
    irreducible loss E, in nats per byte, against the chain's exact entropy rate. E is per token; a token
    covers val_loss / (val_bpb ln 2) bytes. `mixed`: other sources share the corpus."""
    if source is None or not chinchilla.get("params"):
        return []
    from isoflop.corpus.synthetic import entropy_rate

    ok = finished(runs)
    tokens_per_byte = float((ok["val_bpb"] * math.log(2) / ok["val_loss"]).median())
    truth = entropy_rate(source)
    fitted = chinchilla["params"]["E"] * tokens_per_byte
    low, high = (v * tokens_per_byte if v is not None else None for v in chinchilla["ci95"]["E"])
    lines = ["### Ground truth: irreducible loss against the true entropy rate", "",
             f"The synthetic source's entropy rate is {truth:.4f} nats per byte. The fitted E is {fitted:.4f} "
             f"nats per byte (95% interval {_interval([low, high])}; {tokens_per_byte:.3f} tokens per byte): "
             f"a gap of {fitted - truth:+.4f} nats per byte ({(fitted - truth) / truth:+.1%})."]
    if mixed:
        lines.append("Other sources are mixed in, so E describes the mixture, not the synthetic text alone.")
    return lines + [""]


BASELINE_FIGURE = "baseline_comparison.png"


def baseline_lines(baseline: Path, laws_path: Path, figures: Path) -> list[str]:
    """The comparison with a baseline study (`isoflop compare` with the baseline as A and this study as B): each
    law as its study's default chooses it, the loss gap at the target budget with its interval, and a figure."""
    from isoflop.compare import compare_frontiers, describe, plot_comparison, read_study

    studies = [read_study(baseline, None), read_study(laws_path, None)]
    result = compare_frontiers(studies[0]["law"], studies[1]["law"],
                               span=[fit for study in studies for fit in study["fits"]])
    figures.mkdir(parents=True, exist_ok=True)
    plot_comparison(result, [f"baseline: {baseline}", "this study"], figures / BASELINE_FIGURE)
    lines = ["## Against the baseline study", "",
             f"A is the baseline `{baseline}` ({studies[0]['law']['law']} law: {studies[0]['why']}); B is this study "
             f"({studies[1]['law']['law']} law: {studies[1]['why']}).", ""]
    lines += [f"- {line}" for line in describe(result).splitlines()]
    return lines + [f"- {gap_against_noise(result['gap'][0], [read_json(study['source']) for study in studies])}", ""]


def gap_against_noise(gap: float, laws: list[dict]) -> str:
    """Whether a loss gap between two studies exceeds what seed noise alone makes two single runs differ by
    (2 sqrt(2) run-to-run sd, from whichever study measured it; the larger where both did)."""
    measured = [entry["seed_noise"]["sd"] for entry in laws if entry.get("seed_noise")]
    if not measured:
        return "Neither study trained a grid point with several seeds, so whether the gap exceeds the seed noise is unknown."
    threshold = 2 * math.sqrt(2) * max(measured)
    relation = "exceeds" if abs(gap) > threshold else "does not exceed"
    return (f"The gap ({gap:+.4g} nats) {relation} the seed noise: two single runs differ by up to 2√2 sd = "
            f"{threshold:.3g} nats from their seeds alone.")


def _figures(runs: pd.DataFrame, laws: dict, curves: dict[str, pd.DataFrame], figures: Path) -> list[tuple[str, str]]:
    """Draw every figure; returns (file name, caption) pairs. A figure that cannot be drawn is logged, not fatal.
    `curves`: run id -> its curve (a branched run's includes its trunk's steps; the branch state carries them)."""
    from isoflop.plots import curves as curve_plots

    figures.mkdir(parents=True, exist_ok=True)
    drawn = []
    jobs = [("loss_curves.png", "Training loss per run (lines) and final validation loss (dots), per budget.",
             lambda p: curve_plots.plot_loss_curves(runs, curves, p))]
    try:
        from isoflop.plots import laws as law_plots
    except ImportError as err:
        log.warning("law figures unavailable: %s", err)
    else:
        from isoflop.stages import best_of_sweep

        ok = finished(best_of_sweep(runs))
        iso, chin, env = laws.get("isoflop"), laws.get("chinchilla"), laws.get("envelope")
        allocation = {"envelope_fit": env, "next_budget": laws.get("next_budget"),
                      "convention": laws.get("flops_convention")}
        convention = {"convention": laws.get("flops_convention")}
        candidates = [
            ("envelope.png", "Approach 1: every run's validation loss against its compute, joined per model size, "
             "the lowest loss reached at each compute, and the size reaching it with its power law.", env,
             lambda p: law_plots.plot_envelope(env, p, **convention)),
            ("isoflop_curves.png", "IsoFLOP curves: validation loss against model size per budget, fitted "
             "parabolas in log N and their minima, with seed-noise bands (±1.96 run-to-run sd) where replicates "
             "measured it.", iso,
             lambda p: law_plots.plot_isoflop_curves(ok, iso, p, seed_noise=laws.get("seed_noise"), **convention)),
            ("frontier.png", "Compute-optimal model size N*(C) and tokens D*(C) with 95% bootstrap bands from "
             "every approach fitted, and each one's projection at the next 10x budget (diamonds).",
             iso or chin or env, lambda p: law_plots.plot_frontier(iso, chin, p, **allocation)),
            ("tokens_per_param.png", "Compute-optimal tokens per parameter D*/N* against compute from every "
             "approach fitted, with 95% bootstrap bands.", iso or chin or env,
             lambda p: law_plots.plot_tokens_per_param(iso, chin, p, **allocation)),
            ("fitted_vs_observed.png", "Chinchilla law (approach 3) against the observed losses.", chin,
             lambda p: law_plots.plot_fitted_vs_observed(ok, chin, p, **convention)),
            ("extrapolation.png", "Extrapolation check: laws fitted on the budgets 3x or more below the largest "
             "predict its runs, with 95% prediction intervals.",
             laws.get("extrapolation"), lambda p: law_plots.plot_extrapolation(ok, laws, p, **convention)),
            ("backtest.png", "Backtest: per fold, each law's relative error on every larger budget's runs with its 95% "
             "prediction interval, and the share of runs inside it.", laws.get("backtest_ranking"),
             lambda p: law_plots.plot_backtest(laws, p)),
        ]
        jobs += [(name, caption, draw) for name, caption, fitted, draw in candidates if fitted]
    for name, caption, draw in jobs:
        try:
            draw(figures / name)
            drawn.append((name, caption))
        except Exception as err:  # noqa: BLE001 - one broken figure must not lose the report
            log.warning("figure %s failed: %s", name, err)
    return drawn


def group_names(curation: dict) -> dict[str, str]:
    """Each cluster group (c0, c1, ...) named by its top terms from the curation's cluster report."""
    from isoflop.mix.mixture import cluster_group

    terms = curation["curation"]["stages"].get("cluster", {}).get("top_terms", {})
    return {cluster_group(int(c)): f"{cluster_group(int(c))}: {', '.join(words[:3])}" for c, words in terms.items()}


def mixture_lines(summary: dict, curation: dict, figures: Path) -> list[str]:
    """The mixture search: per round the predictors' scores and the chosen mixture, the verification at larger
    scales with the decision accuracy, and the scaling comparison of the chosen and the natural mixture."""
    from isoflop.compare import plot_comparison
    from isoflop.plots.mix import plot_chosen_mixtures, plot_held_out

    names = group_names(curation)
    rounds = summary["rounds"]
    lines = ["## Choosing the data mixture", "",
             f"Target: `{summary['target']}` (validation loss, nats/token); groups: "
             f"{', '.join(names.get(g, g) for g in summary['groups'])}.", "",
             "| round | proxies | predictor | CV Spearman | CV MAE | held-out Spearman | held-out MAE |",
             "|---|---|---|---|---|---|---|"]
    for r in rounds:
        for model, scores in r["cross_validated"].items():
            held = r["held_out"].get(model, {})
            lines.append(f"| {r['round']} | {r['proxies']} | {model} | {_fmt(scores['spearman'], 3)} | "
                         f"{_fmt(scores['mae'], 3)} | {_fmt(held.get('spearman'), 3)} | {_fmt(held.get('mae'), 3)} |")
    lines += ["", "Held out: a round's proxies predicted by the predictors fitted on the rounds before it.", ""]
    for r in rounds:
        if r.get("uninformative"):
            lines.append(f"- Round {r['round']}: **{', '.join(r['uninformative'])} uninformative**: one constant "
                         f"predicted for every held-out proxy (Spearman undefined); it does not propose"
                         f"{', ' + r['proposer'] + ' does' if r.get('proposer') not in r['uninformative'] else ''}.")
    lines += ["", "| after round | proposed by | chosen mixture | predicted target | constraints that bind |",
              "|---|---|---|---|---|"]
    for r in rounds:
        weights = ", ".join(f"{g} {w:.2f}" for g, w in r["chosen"]["weights"].items() if w >= 0.005)
        lines.append(f"| {r['round']} | {r.get('proposer') or 'n/a'} | {weights} | {_fmt(r['chosen']['predicted'])} | "
                     f"{', '.join(r['chosen']['binding']) or 'none'} |")
    figures.mkdir(parents=True, exist_ok=True)
    plot_chosen_mixtures(rounds, summary["natural"], names, figures / "mix_rounds.png")
    lines += ["", "![mixture chosen per round](figures/mix_rounds.png)", ""]
    if any(r["held_out"] for r in rounds):
        plot_held_out(rounds, figures / "mix_held_out.png")
        lines += ["![predicted against observed on held-out proxies](figures/mix_held_out.png)", ""]
    if summary["verification"]:
        lines += verification_lines(summary, names)
    scaling = summary["scaling"]
    if scaling and "not_fitted" in scaling:
        lines += ["### Scaling of the chosen mixture", "", f"No law fitted: {scaling['not_fitted']}", ""]
    elif scaling:
        comparison = scaling["comparison"]
        curves = comparison["curves"]
        comparison["curves"] = {"compute": np.asarray(curves["compute"]),
                                **{key: (np.asarray(curves[key][0]), np.asarray(curves[key][1])) for key in "ab"}}
        plot_comparison(comparison, ["natural mixture", "chosen mixture"], figures / "mix_scaling.png")
        gap, (low, high) = scaling["gap"]
        lines += ["### Scaling of the chosen mixture", "",
                  f"At C = {scaling['budget']:.3g} FLOPs (10x the largest budget of each mixture's IsoFLOP grid), "
                  f"the predicted compute-optimal loss gap chosen minus natural, by both mixtures' "
                  f"{LAW_NAMES[scaling['laws']['chosen']]}, is {gap:+.4f} nats/token, 95% "
                  f"interval [{low:+.4f}, {high:+.4f}]: the interval "
                  f"{'excludes' if scaling['excludes_zero'] else 'includes'} 0.", "",
                  "![compute-optimal frontiers of the two mixtures](figures/mix_scaling.png)", ""]
    return lines


@dataclass
class Study:
    """Everything a section may read, from the files the report rule declares."""

    name: str
    runs: pd.DataFrame
    laws: dict
    laws_path: Path
    plan: dict
    curation: dict
    curated_dir: Path
    figures_dir: Path
    figures: dict[str, str]  # drawn figure -> its caption
    tokens: dict | None = None  # meta.json of the token folder training reads
    benchmarks: dict = field(default_factory=dict)
    trunk_results: list = field(default_factory=list)
    ground_truth: dict | None = None
    mixed_sources: bool = False
    baseline: Path | None = None
    mix: dict | None = None  # the mixture search's summary.json
    forecasts: dict | None = None  # the fit's forecasts scored (rule score_forecasts; isoflop.ledger.score_stage)

    def figure(self, name: str) -> list[str]:
        """A drawn figure inline with its caption; nothing where it was not drawn."""
        caption = self.figures.get(name)
        return [] if caption is None else [f"![{caption}](figures/{name})", "", f"*{caption}*", ""]


def _md(lines: list[str]) -> str | None:
    return "\n".join(lines) if lines else None


def training_tokens(meta: dict | None) -> int | None:
    """The training tokens of every group of a token folder's meta.json; None without one."""
    if not meta:
        return None
    return int(sum(entry["train_tokens"] for entry in meta["domains"].values()))


def repetition_caveat(laws: dict, meta: dict | None) -> str | None:
    """A warning where the recommended allocation (or another approach's) trains on more tokens than the corpus
    holds: the laws were fitted on runs that saw each token at most about once, so beyond one epoch they
    predict a loss the repeated data will not reach (Muennighoff et al. 2023)."""
    total, recommended = training_tokens(meta), recommendation(laws)
    if not total or not recommended:
        return None
    trusted = recommended["source"]
    allocations = {trusted: recommended["D_opt"], **{name: recommended[name]["D_opt"] for name in APPROACH_NAMES
                                                     if name != trusted and recommended.get(name)}}
    over = {name: tokens / total for name, tokens in allocations.items() if tokens > total}
    if not over:
        return None
    stated = "; ".join(f"{APPROACH_NAMES[name]}{' (trusted)' if name == trusted else ''} D* = {_fmt(allocations[name])}"
                       f" tokens, {epochs:.1f} epochs" for name, epochs in over.items())
    return (f"**Data repetition**: the corpus holds {_fmt(total)} training tokens; at C = {_fmt(recommended['C'])} "
            f"{stated}. The laws were fitted on unrepeated data; repeated tokens are worth less, so the loss there "
            "will be worse than predicted (more data, or a smaller target budget).")


def summary_section(study: Study) -> str | None:
    """The decision first, in at most 8 lines: the trusted approach's N*, D* and loss at the target budget with
    intervals, its trust horizon, and the caveats that matter."""
    laws = study.laws
    lines = ["## Summary", ""]
    recommended = recommendation(laws)
    if recommended is None:
        lines.append("- No loss law could be fitted to these runs; see the warnings.")
    else:
        trusted, why = trusted_approach(laws)
        C = recommended["C"]
        largest = C / NEXT_BUDGET_FACTOR
        ratio = recommended["D_opt"] / recommended["N_opt"]
        lines.append(f"- **Recommended at C = {_fmt(C)} FLOPs** ({NEXT_BUDGET_FACTOR:g}x the largest budget): "
                     f"N* = {_fmt(recommended['N_opt'])} {_interval(recommended['ci95']['N_opt'])} parameters, "
                     f"D* = {_fmt(recommended['D_opt'])} {_interval(recommended['ci95']['D_opt'])} tokens "
                     f"({ratio:.0f} tokens per parameter), loss {_fmt(recommended['loss'])} nats/token "
                     f"{_interval(recommended['ci95']['loss'])} (a run's: {_interval(recommended['loss_pred95'])}).")
        lines.append(f"- From {APPROACH_NAMES[trusted]}, the trusted approach: {why}.")
        factor = trust_horizon((laws.get("lack_of_fit") or {}).get(trusted))
        if (laws.get("lack_of_fit") or {}).get(trusted) is None:
            lines.append("- Trust horizon: not measured (too few budgets to test the residuals for curvature).")
        elif factor is None or factor >= NEXT_BUDGET_FACTOR:
            shown = f"about {factor:.3g}x" if factor is not None else "beyond 1e6x"
            lines.append(f"- Trust horizon: {shown} the largest budget ({_fmt(largest)} FLOPs); the target lies "
                         "within it.")
        else:
            lines.append(f"- **Beyond the trust horizon**: the lack-of-fit test trusts {APPROACH_NAMES[trusted]} up to "
                         f"about {factor:.3g}x the largest budget (C = {_fmt(largest * factor)}), the target is "
                         f"{NEXT_BUDGET_FACTOR:g}x: treat these numbers as an extrapolation and train a step at the "
                         "horizon first.")
        lines += [f"- {caveat}" for caveat in _caveats(laws, recommended, study.tokens)]
    if study.mix:
        lines += [f"- {line}" for line in mixture_verdict_lines(study.mix)]
    return _md(lines + [""])


def _caveats(laws: dict, recommended: dict, meta: dict | None) -> list[str]:
    """The caveats that change the decision: the approaches' disagreement on N* beyond a factor 1.5, data
    repetition, and a trusted law without a loss floor."""
    caveats = []
    allocations = {recommended["source"]: recommended,
                   **{name: recommended[name] for name in APPROACH_NAMES if recommended.get(name)}}
    sizes = {name: entry["N_opt"] for name, entry in allocations.items()}
    if len(sizes) > 1 and max(sizes.values()) / min(sizes.values()) > DISAGREEMENT_FACTOR:
        low, high = min(sizes, key=sizes.get), max(sizes, key=sizes.get)
        ratios = [entry["D_opt"] / entry["N_opt"] for entry in allocations.values()]
        caveats.append(f"**The approaches disagree**: N* from {_fmt(sizes[low])} ({APPROACH_NAMES[low]}) to "
                       f"{_fmt(sizes[high])} ({APPROACH_NAMES[high]}), {min(ratios):.0f} to {max(ratios):.0f} "
                       "tokens per parameter; see \"Approaches compared\".")
    repetition = repetition_caveat(laws, meta)
    if repetition:
        caveats.append(repetition)
    if recommended["source"] == "isoflop":
        caveats.append("Approach 2's loss law is a power law in C without a floor: its loss keeps falling at any "
                       "budget, so its loss forecast is only as good as the trust horizon.")
    return caveats


DISAGREEMENT_FACTOR = 1.5  # approaches whose N* differ by more than this are a caveat of the summary


def warnings_section(study: Study) -> str | None:
    warnings = list(study.laws.get("warnings", [])) + edge_warnings(study.laws)
    return _md(["## Warnings", ""] + [f"- {w}" for w in warnings] + [""]) if warnings else None


def allocation_section(study: Study) -> str | None:
    """The recommended allocation in full: every approach's N*, D* and loss at the target budget."""
    laws, recommended = study.laws, recommendation(study.laws)
    if not recommended:
        return None
    lines = [f"## Compute-optimal allocation for the next 10x budget, C = {_fmt(recommended['C'])} FLOPs", "",
             f"From {APPROACH_NAMES[recommended['source']]}, the trusted approach (`isoflop predict --C "
             f"{recommended['C']:.4g}` on laws.json prints the same):", "",
             "| quantity | estimate | 95% confidence interval | 95% prediction interval (a run's loss) |",
             "|---|---|---|---|"]
    for key in ("C", "N_opt", "D_opt", "loss"):
        predicted = _interval(recommended.get("loss_pred95")) if key == "loss" else ""
        confidence = _interval(recommended["ci95"][key]) if key in recommended["ci95"] else ""
        lines.append(f"| {key} | {_fmt(recommended[key])} | {confidence} | {predicted} |")
    lines.append("")
    for name in APPROACH_NAMES:
        other = recommended.get(name)
        if other and name != recommended["source"]:
            loss = f", loss {_fmt(other['loss'])}" if "loss" in other else ""
            lines.append(f"- {APPROACH_NAMES[name]}: N* = {_fmt(other['N_opt'])} {_interval(other['ci95']['N_opt'])}, "
                         f"D* = {_fmt(other['D_opt'])} {_interval(other['ci95']['D_opt'])}{loss}.")
    lines += [""] + tokens_per_param_lines(laws)
    return _md(lines + study.figure("frontier.png") + study.figure("tokens_per_param.png"))


def approaches_section(study: Study) -> str | None:
    return _md(approaches_lines(study.laws))


def laws_section(study: Study) -> str | None:
    """Each fitted approach's parameters with its figure; an approach not fitted is absent (the warnings say why)."""
    laws = study.laws
    lines = []
    chin = laws.get("chinchilla")
    if chin:
        lines += ["### Chinchilla approach 3: L(N, D) = E + A/N^alpha + B/D^beta", ""]
        lines += _param_table(chin, ["E", "A", "B", "alpha", "beta"])
        opt = chin.get("compute_optimal", {})
        if opt:
            lines += ["", f"Compute-optimal exponents: N* ~ C^a with a = {_fmt(opt.get('a'))} "
                      f"{_interval(opt.get('ci95', {}).get('a'))}, D* ~ C^b with b = {_fmt(opt.get('b'))} "
                      f"{_interval(opt.get('ci95', {}).get('b'))}."]
        lines += ["", f"Objective {_fmt(chin.get('objective'))} over {chin.get('n_points', 'n/a')} points.", ""]
        lines += study.figure("fitted_vs_observed.png")
        lines += ground_truth_lines(study.runs, chin, study.ground_truth, study.mixed_sources)
    iso = laws.get("isoflop")
    if iso:
        lines += ["### IsoFLOP approach 2: a parabola in log N per budget, then N*(C) and D*(C) power laws", ""]
        lines += _param_table(iso, list(iso.get("params", {})))
        lines += ["", "| budget C | N* | N* 95% interval | D* | loss at N* | minimum inside grid |",
                  "|---|---|---|---|---|---|"]
        for entry in iso.get("budgets", []):
            lines.append(
                f"| {_fmt(entry.get('C'))} | {_fmt(entry.get('N_opt'))} | "
                f"{_interval(entry.get('ci95', {}).get('N_opt'))} | {_fmt(entry.get('D_opt'))} | "
                f"{_fmt(entry.get('loss_opt'))} | {'no (edge)' if entry.get('minimum_at_edge') else 'yes'} |")
        lines += [""] + study.figure("isoflop_curves.png")
    if laws.get("envelope"):
        lines += envelope_lines(laws["envelope"]) + study.figure("envelope.png")
    lr_law = laws.get("lr_law")
    if lr_law:
        lines += ["### Learning-rate law: lr* = c N^p D^q (Li et al. 2025)", ""]
        lines += _param_table(lr_law, ["c", "p", "q"])
        lines += ["", "| N | D | lr* | 95% interval | bracketed by the sweep |", "|---|---|---|---|---|"]
        for group in lr_law.get("groups", []):
            lines.append(f"| {_fmt(group['N'])} | {_fmt(group['D'])} | {_fmt(group['lr_opt'])} | "
                         f"{_interval(group['ci95']['lr_opt'])} | {'no' if group['minimum_at_edge'] else 'yes'} |")
        lines.append("")
    return _md(["## Fitted laws", ""] + lines) if lines else None


def data_section(study: Study) -> str | None:
    """Documents and tokens per domain, and how many epochs of it the runs and the recommended allocation use."""
    curation, meta = study.curation, study.tokens
    split = curation["split"]
    token_groups = (meta or {}).get("domains", {})
    same = set(token_groups) <= set(curation["ingest"]["by_domain"])
    lines = ["## Data", "", "| domain | documents in | documents kept | train docs | val docs |"
             + (" train tokens | val tokens |" if token_groups and same else ""),
             "|---|---|---|---|---|" + ("---|---|" if token_groups and same else "")]
    for domain, entry in curation["ingest"]["by_domain"].items():
        train = split["train"].get(domain, {}).get("documents", 0)
        val = split["val"].get(domain, {}).get("documents", 0)
        row = f"| {domain} | {entry['documents']} | {train + val} | {train} | {val} |"
        if token_groups and same:
            tokens = token_groups.get(domain, {})
            row += f" {tokens.get('train_tokens', 0):,} | {tokens.get('val_tokens', 0):,} |"
        lines.append(row)
    if token_groups and not same:  # training reads other groups (the curation's clusters)
        lines += ["", "| training group | train tokens | val tokens |", "|---|---|---|"]
        lines += [f"| {group} | {entry['train_tokens']:,} | {entry.get('val_tokens', 0):,} |"
                  for group, entry in token_groups.items()]
    total = training_tokens(meta)
    if total:
        largest = study.runs["D"].max()
        lines += ["", f"{total:,} training tokens in all. The largest run trains on {_fmt(float(largest))} tokens, "
                  f"{largest / total:.2f} epochs of them."]
        recommended = recommendation(study.laws)
        if recommended:
            lines.append(f"The recommended D* = {_fmt(recommended['D_opt'])} tokens is "
                         f"{recommended['D_opt'] / total:.2f} epochs.")
        repetition = repetition_caveat(study.laws, meta)
        if repetition:
            lines += ["", repetition]
    return _md(lines + [""])


def mixture_section(study: Study) -> str | None:
    return _md(mixture_lines(study.mix, study.curation, study.figures_dir)) if study.mix else None


def tasks_section(study: Study) -> str | None:
    """Downstream tasks, where the study's runs scored any (`eval.tasks`): task bpb against compute, which
    accuracies are still at chance, and which metrics carry signal (docs/tasks.md)."""
    from isoflop.task_laws.report import report_section

    return report_section(study.runs, study.figures_dir)


def diagnostics_section(study: Study) -> str | None:
    """Whether to believe the laws: held-out budgets, curvature, seed noise, schedule and loss-to-loss laws
    (each its own section, absent where it has nothing to say)."""
    laws = study.laws
    parts = [backtest_lines(laws) + study.figure("backtest.png"), extrapolation_lines(laws)
             + study.figure("extrapolation.png"), lack_of_fit_lines(laws), seed_noise_lines(laws),
             schedule_law_lines(laws), loss_to_loss_lines(laws)]
    return _md([line for part in parts if part for line in part])


def forecasts_section(study: Study) -> str | None:
    """The study's forecast ledger: each forecast run's loss forecast before it trained, whether it landed
    inside the 90% and 95% intervals, coverage so far and the reliability diagram (docs/forecasts.md)."""
    if not study.forecasts or not study.forecasts["forecasts"]:
        return None
    from isoflop import ledger
    from isoflop.plots.forecasts import plot_reliability

    scored = study.forecasts["forecasts"]
    plot_reliability(scored, study.figures_dir / RELIABILITY_FIGURE)
    return ledger.markdown_section(scored, f"figures/{RELIABILITY_FIGURE}") + f"\n*{RELIABILITY_CAPTION}*\n"


RELIABILITY_FIGURE = "reliability.png"
RELIABILITY_CAPTION = ("Reliability of the study's forecasts: the share of forecast runs inside their 90% and 95% "
                       "prediction intervals against the stated level, with 90% binomial bands.")


def baseline_section(study: Study) -> str | None:
    if study.baseline is None:
        return None
    return _md(baseline_lines(study.baseline, study.laws_path, study.figures_dir)
               + [f"![{BASELINE_CAPTION}](figures/{BASELINE_FIGURE})", "", f"*{BASELINE_CAPTION}*", ""])


BASELINE_CAPTION = ("This study's compute-optimal frontier against the baseline's, with 95% bands, and the target "
                    "budget of the comparison.")


def runs_section(study: Study) -> str | None:
    runs, compute = study.runs, study.plan["compute"]
    lines = ["## Runs", "", "| run | budget | d_model | N | D | C | status | val loss | val bpb |",
             "|---|---|---|---|---|---|---|---|---|"]
    for _, r in runs.iterrows():
        lines.append(f"| `{r.run_id}` | {_fmt(r.budget)} | {r.d_model} | {r.N:,} | {r.D:,} | {_fmt(r.C)} | "
                     f"{r.status} | {_fmt(r.val_loss)} | {_fmt(r.val_bpb)} |")
    if compute["trunks"]:
        lines += ["", f"Training compute: {compute['planned_flops']:.3g} FLOPs with {compute['trunks']} WSD trunks "
                  f"and branched cooldowns, against {compute['separate_flops']:.3g} FLOPs as separate runs: "
                  f"{compute['saved_fraction']:.0%} saved (Hagele et al. 2024)."]
    else:
        lines += ["", f"Training compute: {compute['separate_flops']:.3g} FLOPs (separate runs)."]
    lines += [""] + study.figure("loss_curves.png")
    return _md(lines + time_lines(study.benchmarks, runs, study.trunk_results) + [""])


def curation_appendix(study: Study) -> str | None:
    lines = curation_section(study.curation, study.figures_dir, study.curated_dir)
    return _md(["## Appendix: curation", ""] + ["#" + line if line.startswith("## ") else line
                                                for line in lines[2:]])


# The report in the order a reader needs it: the decision, what it rests on, whether to believe it, the detail.
# A section is a function of the Study returning markdown, or None when it has nothing to say.
SECTIONS = (summary_section, warnings_section, allocation_section, approaches_section, laws_section, data_section,
            mixture_section, tasks_section, diagnostics_section, forecasts_section, baseline_section, runs_section,
            curation_appendix)


def verification_lines(summary: dict, names: dict[str, str]) -> list[str]:
    """The verification at larger scales: per scale every compared mixture's target, its loss on the natural
    validation mixture and each group's loss (seeds' means), the decision accuracy with seed noise, and the
    warnings where the chosen mixture's target win does not hold elsewhere."""
    rows = summary["verification"]
    scales = sorted({row["scale"] for row in rows})
    groups = sorted({group for row in rows for group in row.get("groups", {})})
    seeds = max(len(row.get("run_ids", [None])) for row in rows)
    lines = ["### Verification at larger scales (DataDecide)", "",
             f"Each compared mixture trained with {seeds} seed{'s' if seeds > 1 else ''} per scale; losses are the "
             "seeds' means (nats/token). The target is what the search minimised; the natural mixture is the "
             "validation set in the corpus's own proportions.", ""]
    for scale in scales:
        at = [row for row in rows if row["scale"] == scale]
        lines += [f"**Scale {scale}**: d_model {at[0]['d_model']}, {at[0]['tokens']:,} tokens.", "",
                  "| mixture | target | natural mixture | " + " | ".join(names.get(g, g) for g in groups) + " |",
                  "|---|---|---|" + "---|" * len(groups)]
        for row in at:
            spread = (f" (seeds {', '.join(_fmt(v) for v in row['targets'])})"
                      if len(row.get("targets") or []) > 1 else "")
            lines.append(f"| {row['mixture']} | {_fmt(row['target'])}{spread} | {_fmt(row.get('natural'))} | "
                         + " | ".join(_fmt(row.get("groups", {}).get(g)) for g in groups) + " |")
        lines.append("")
    from isoflop.mix.task_target import is_task_target

    items = "questions" if is_task_target(summary.get("target")) else "eval windows"
    noise = f"{items} and seeds" if seeds > 1 else f"{items} only: one seed per mixture, seed noise unmeasured"
    for row in summary["decision_accuracy"]:
        lines.append(f"- scale 0 -> scale {row['scale']}: decision accuracy {row['accuracy']:.2f} "
                     f"(95% bootstrap interval over {noise}: [{row['lo']:.2f}, {row['hi']:.2f}], "
                     f"{row['pairs']} pairs); best mixture `{row['winner']}`; the chosen mixture "
                     f"{'wins' if row['chosen_wins'] else 'does not win'} the target (in "
                     f"{row['chosen_wins_share']:.0%} of the resamples).")
    lines += [f"- **Warning**: {warning}" for warning in mixture_warnings(summary)]
    from isoflop.task_laws.report import mixture_decision_lines

    return lines + mixture_decision_lines(summary) + [""]


def mixture_warnings(summary: dict) -> list[str]:
    """Per verified scale, where the chosen mixture wins its target but loses on the natural mixture or on most
    groups (`isoflop.mix.decide.divergence_warnings`)."""
    from isoflop.mix.decide import divergence_warnings

    rows = {(row["scale"], row["mixture"]): row for row in summary["verification"]}
    return [f"d_model {rows[(scale, 'chosen')]['d_model']}: {warning}"
            for scale in sorted({scale for scale, _ in rows})
            if (scale, "chosen") in rows and (scale, "natural") in rows
            for warning in divergence_warnings(rows[(scale, "chosen")], rows[(scale, "natural")])]


def mixture_verdict_lines(summary: dict) -> list[str]:
    """The mixture search's decision for the summary: at the largest verified scale, the chosen mixture against
    the natural one on the target, on the natural mixture and per group, with the warning where they diverge."""
    if not summary.get("verification"):
        return []
    scale = max(row["scale"] for row in summary["verification"])
    rows = {row["mixture"]: row for row in summary["verification"] if row["scale"] == scale}
    chosen, natural = rows.get("chosen"), rows.get("natural")
    if not chosen or not natural:
        return []
    line = (f"**Mixture** at d_model {chosen['d_model']} ({chosen['tokens']:,} tokens): target loss "
            f"{_fmt(chosen['target'])} chosen against {_fmt(natural['target'])} natural"
            + (f"; on the natural validation mixture {_fmt(chosen['natural'])} against {_fmt(natural['natural'])}"
               if chosen.get("natural") is not None and natural.get("natural") is not None else ""))
    decided = [row for row in summary["decision_accuracy"] if row["scale"] == scale]
    if decided:
        row = decided[0]
        line += (f"; decision accuracy {row['accuracy']:.2f} [{row['lo']:.2f}, {row['hi']:.2f}], the chosen mixture "
                 f"best in {row['chosen_wins_share']:.0%} of resamples"
                 + (" of windows and seeds" if max(row.get("seeds", [1])) > 1 else " (one seed: seed noise unmeasured)"))
    warnings = mixture_warnings(summary)
    return [line + "."] + ([f"**Warning**: {warnings[-1]}" + (f" (and {len(warnings) - 1} more below)"
                                                              if len(warnings) > 1 else "")] if warnings else [])


def write_report(runs_path, laws_path, curated_dir, plan_path, curve_paths, trunk_results, benchmarks: dict[str, list],
                 report_path, figures_dir, *, study: str, ground_truth: dict | None = None,
                 mixed_sources: bool = False, baseline=None, mix_summary=None, tokens_dir=None,
                 forecast_scores=None) -> str:
    """Write report.md and the figures. `curve_paths`: the runs' curve.parquet files; `trunk_results`: the
    trunks' result.json files; `benchmarks`: stage -> its jobs' benchmark files; `ground_truth`: the synthetic
    source's config when the study is a ground-truth study (see `ground_truth_lines`); `baseline`: another
    study's laws.json to compare with (see `baseline_lines`); `mix_summary`: the mixture search's summary.json
    (see `mixture_lines`); `tokens_dir`: the token folder training reads (its meta.json counts the tokens);
    `forecast_scores`: the fit's forecasts scored against their runs (see `forecasts_section`)."""
    runs = pd.read_parquet(runs_path)
    laws = read_json(laws_path)
    curves = {Path(path).parent.name: pd.read_parquet(path) for path in curve_paths}
    context = Study(
        name=study, runs=runs, laws=laws, laws_path=Path(laws_path), plan=read_json(plan_path),
        curation=read_json(Path(curated_dir) / "curation.json"), curated_dir=Path(curated_dir),
        figures_dir=Path(figures_dir), figures=dict(_figures(runs, laws, curves, Path(figures_dir))),
        tokens=read_meta(tokens_dir) if tokens_dir is not None else None, benchmarks=benchmarks,
        trunk_results=list(trunk_results), ground_truth=ground_truth, mixed_sources=mixed_sources,
        baseline=None if baseline is None else Path(baseline),
        mix=read_json(mix_summary) if mix_summary is not None else None,
        forecasts=read_json(forecast_scores) if forecast_scores is not None else None)
    ok = finished(runs)
    intro = (f"# Scaling-law study `{study}`\n\n{len(runs)} training runs over {runs['budget'].nunique()} compute "
             f"budgets ({_fmt(runs['budget'].min())} to {_fmt(runs['budget'].max())} FLOPs) and "
             f"{runs['N'].nunique()} model sizes; {len(ok)} finished, {len(runs) - len(ok)} excluded. "
             f"N and C follow the `{laws['flops_convention']}` convention.\n")
    sections = [section(context) for section in SECTIONS]
    text = "\n".join([intro, *(section for section in sections if section)])
    Path(report_path).write_text(text)
    return text
