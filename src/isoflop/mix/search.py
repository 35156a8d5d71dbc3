"""The mixture search as workflow stages: rounds of proxy runs, a fit per round, the verification at larger
scales and the scaling comparison (see workflow/rules/mix.smk for how they chain).

    round_stage    round 0: Dirichlet mixtures around the natural one (RegMix), taken in farthest-first order so
                   that few proxies still cover the simplex; round r: the mixtures the round r-1 predictor
                   rates best among candidates around its choice and the natural one (CLIMB), each at least
                   MIN_PROXY_DISTANCE (L1) from the others and from every proxy trained before. Writes the
                   round's runs (run id -> spec and mixture).
    fit_stage      every proxy so far: the three predictors' cross-validated scores, their predictions of
                   this round's proxies from the last round's fits (held out), and the proposed mixture.
    final_stage    the chosen, named and best proxies' mixtures at the proxy scale and every larger scale,
                   and a small IsoFLOP grid of the chosen and the natural mixture.
    summary_stage  the verification table, the decision accuracy per scale, the scaling laws and the gap.

`cfg` is the study config's slice that these stages read (`mix`, `model`, `tokenizer`, `train`, `plan`,
`seed`): a proxy is an ordinary run spec built by `isoflop.plan.run_spec`.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from isoflop.errors import UserError
from isoflop.mix.mixture import check_epochs, epochs, mixture_id, resolve
from isoflop.mix.task_target import is_task_target, question_matrix, task_target_value
from isoflop.plan import make_plan, run_record, run_spec, seed_for, shape_accounting
from isoflop.tasks.results import METRICS as TASK_METRICS
from isoflop.tokens import read_meta
from isoflop.workflow import read_json, write_json

log = logging.getLogger("isoflop")
MODELS = ("lgbm", "mixing-law", "ridge")
CHOSEN, NATURAL = "chosen", "natural"
# A later round's proxies keep at least this L1 distance from one another and from every proxy trained before:
# otherwise the best-rated candidates crowd onto the predictor's optimum (a corner of the simplex, say) and a
# round trains the same mixture six times (seen: six round-1 proxies within 0.004 of hard weight 1.0, with
# losses equal to 4 decimals). 0.1 is 5% of the mass moved between two groups.
MIN_PROXY_DISTANCE = 0.1


def target_loss(result: dict, target) -> float | None:
    """The search's objective for one finished run: the validation loss on the natural mixture (each group
    weighted by its share of the training tokens), the mean over groups, one group's, a weighted sum, or a
    task target (`isoflop.mix.task_target`); None for a run that did not finish ok."""
    if is_task_target(target):
        return task_target_value(result, target)
    losses = result.get("val_loss_by_domain")
    if result.get("status") != "ok" or not losses:
        return None
    if target == NATURAL:  # the validation set in the corpus's own proportions: the same for every mixture
        return result.get("val_loss_natural")
    if target == "mean":
        return float(np.mean(list(losses.values())))
    if isinstance(target, str):
        return float(losses[target])
    total = sum(target.values())
    return float(sum(weight * losses[group] for group, weight in target.items()) / total)


def target_groups(target, groups) -> list[str]:
    """The groups whose evaluation windows the decision accuracy compares mixtures on."""
    if target in ("mean", NATURAL):
        return sorted(groups)
    if isinstance(target, str):
        return [target]
    return sorted(group for group, weight in target.items() if weight > 0)


def _mixture_run(cfg: dict, data_id: str, weights: dict, d_model: int, tokens: int, replicate: int = 0,
                 **record) -> tuple[str, dict]:
    """A run of `weights` at one scale with the seed of `replicate`: an ordinary run record
    (`isoflop.plan.run_record`) with the mixture's id and `record`'s fields (role, round, scale)."""
    shape = shape_accounting(cfg, d_model) | {"d_model": d_model}
    per_step = cfg["train"]["batch_size"] * cfg["model"]["seq_len"]
    spec = run_spec(cfg, shape, tokens=math.ceil(tokens / per_step) * per_step, lr_multiplier=1.0,
                    seed=seed_for(cfg["seed"], replicate), mixture=weights)
    run = run_record(cfg, shape, spec, data_id, budget=0.0, replicate=replicate)
    run["budget"] = run["C"]
    return run["run_id"], {**run, "trunk_id": None, "branch_step": None, "mixture_id": mixture_id(weights),
                           "weights": weights, **record}


def _feasible(weights: dict, tokens: int, meta: dict, mix: dict) -> bool:
    return mix["allow_repeats"] or max(epochs(weights, tokens, meta).values()) <= mix["max_epochs"]


def _as_weights(row, groups) -> dict[str, float]:
    """A sampled row as weights summing to 1 exactly enough for `check_weights` (rounded, then renormalised)."""
    row = np.asarray(row, dtype=np.float64)
    row = row / row.sum()
    return {group: float(w) for group, w in zip(groups, row)}


def spread(samples: np.ndarray) -> np.ndarray:
    """The samples reordered so that each next one is the farthest (L1) from those before it, starting from
    the first: the first K of them cover the simplex where the sampler reaches, where K random draws may
    all land near one corner (with few proxies and few groups, they often do)."""
    order = [0]
    nearest = np.abs(samples - samples[0]).sum(axis=1)
    for _ in range(len(samples) - 1):
        following = int(np.argmax(nearest))
        if nearest[following] == 0:  # the rest repeat mixtures already taken
            break
        order.append(following)
        nearest = np.minimum(nearest, np.abs(samples - samples[following]).sum(axis=1))
    return samples[order]


def round_stage(round_index: int, data_dir, previous_fit, cfg: dict, data_id: str, out_path) -> dict:
    """Write the runs of search round `round_index` (see the module docstring)."""
    from isoflop.mix import propose

    mix, search = cfg["mix"], cfg["mix"]["search"]
    meta = read_meta(data_dir)
    groups = sorted(meta["domains"])
    natural = np.array([resolve("natural", meta, "natural")[g] for g in groups])
    seed = cfg["seed"] * 1000 + round_index
    if previous_fit is None:
        candidates = spread(propose.sample_mixtures(natural, 50 * search["proxies"], seed=seed,
                                                    sparsity=search["sparsity"]))
    else:
        from isoflop.mix.predictors import from_json

        fit = read_json(previous_fit)
        centre = np.array([fit["chosen"]["weights"][g] for g in groups])
        pool = np.concatenate([
            propose.sample_mixtures(centre, search["candidates"], seed=seed, sparsity=search["sparsity"]),
            propose.sample_mixtures(natural, search["candidates"], seed=seed + 500, sparsity=search["sparsity"])])
        predicted = from_json(fit["predictors"][fit.get("proposer", search["model"])]).predict(pool)
        candidates = pool[np.argsort(predicted, kind="stable")]
        trained = np.array([[proxy["weights"][g] for g in groups] for proxy in fit["proxies"]])
    runs = {}
    for row in candidates:
        weights = _as_weights(row, groups)
        if not _feasible(weights, search["tokens"], meta, mix):
            continue
        if previous_fit is not None:  # new, and apart from every proxy so far
            if np.abs(trained - row).sum(axis=1).min() < MIN_PROXY_DISTANCE:
                continue
            trained = np.vstack([trained, row])
        run_id, record = _mixture_run(cfg, data_id, weights, search["d_model"], search["tokens"],
                                      role="proxy", round=round_index)
        runs.setdefault(run_id, record)
        if len(runs) == search["proxies"]:
            break
    if len(runs) < search["proxies"]:
        spacing = f", {MIN_PROXY_DISTANCE} (L1) apart from trained proxies," if previous_fit is not None else ""
        raise UserError(f"mix.search.proxies = {search['proxies']}: only {len(runs)} sampled mixtures{spacing} "
                        f"respect mix.max_epochs = {mix['max_epochs']} at mix.search.tokens = {search['tokens']} "
                        f"(raise mix.search.candidates or lower mix.search.proxies)")
    write_json(out_path, runs)
    return runs


def proxy_table(runs_paths, result_paths, target) -> tuple[list[str], np.ndarray, np.ndarray, list[dict]]:
    """(groups, weights (n, g), targets (n,), records) of every finished proxy; a diverged proxy is left out
    of the fit with a warning."""
    records = {}
    for path in runs_paths:
        records.update(read_json(path))
    rows, values, kept = [], [], []
    groups = None
    for path in result_paths:
        run_id = Path(path).parent.name
        record, result = records[run_id], read_json(path)
        groups = groups or sorted(record["weights"])
        value = target_loss(result, target)
        if value is None:
            log.warning("proxy %s (mixture %s) is %s: left out of the predictors' fit", run_id, record["mixture_id"],
                        result.get("status"))
            continue
        rows.append([record["weights"][g] for g in groups])
        values.append(value)
        kept.append({**record, "run_id": run_id, "target": value})
    return groups, np.array(rows), np.array(values), kept


def fit_stage(round_index: int, runs_paths, result_paths, previous_fit, data_dir, cfg: dict, out_path) -> dict:
    """Fit and score the predictors on every proxy so far, and propose the round's mixture."""
    from isoflop.mix import predictors, propose

    mix, search = cfg["mix"], cfg["mix"]["search"]
    meta = read_meta(data_dir)
    groups, weights, targets, proxies = proxy_table(runs_paths, result_paths, search["target"])
    if len(targets) < 5:
        raise UserError(f"round {round_index}: {len(targets)} finished proxies, too few to fit a predictor "
                        f"(raise mix.search.proxies)")
    seed = cfg["seed"]
    fit = {"round": round_index, "groups": groups, "target": search["target"], "proxies": proxies,
           "cross_validated": {}, "held_out": {}, "predictors": {}}
    folds = min(5, len(targets))
    for model in MODELS:
        fit["cross_validated"][model] = predictors.cross_validate(model, weights, targets, folds=folds, seed=seed)
        fit["predictors"][model] = predictors.fit_predictor(model, weights, targets, seed=seed).to_json()
    if previous_fit is not None:  # this round's proxies, predicted by the fits of the rounds before
        before = read_json(previous_fit)
        new = np.array([p["round"] == round_index for p in proxies])
        for model in MODELS:
            predicted = predictors.from_json(before["predictors"][model]).predict(weights[new])
            fit["held_out"][model] = {"predicted": predicted.tolist(), "observed": targets[new].tolist(),
                                      **predictors.score(targets[new], predicted)}
    natural = np.array([resolve("natural", meta, "natural")[g] for g in groups])
    fit["natural"] = dict(zip(groups, natural.tolist()))
    fit["uninformative"] = uninformative(fit)
    fit["proposer"] = proposer(fit, search["model"])
    bounds = [tuple(search["bounds"].get(g, (0.0, 1.0))) for g in groups] if search["bounds"] else None
    proposal = propose.propose(
        predictors.from_json(fit["predictors"][fit["proposer"]]), natural, n_candidates=search["candidates"],
        top_k=search["top_k"], seed=seed, max_epochs=None if mix["allow_repeats"] else mix["max_epochs"],
        tokens_per_group=np.array([meta["domains"][g]["train_tokens"] for g in groups]),
        total_tokens=largest_tokens(cfg), bounds=bounds, kl_max=search["kl_max"], groups=groups)
    chosen = _as_weights(proposal["weights"], groups)
    fit["chosen"] = {"weights": chosen, "mixture_id": mixture_id(chosen), "predicted": float(proposal["predicted"]),
                     "binding": proposal["binding"], "n_feasible": int(proposal["n_feasible"])}
    log.info("round %d: chose %s (predicted %.4f); cross-validated %s", round_index, chosen, proposal["predicted"],
             {m: round(s["spearman"], 3) for m, s in fit["cross_validated"].items()})
    write_json(out_path, fit, allow_nan=True)
    return fit


def uninformative(fit: dict) -> list[str]:
    """The predictors that predicted one constant for every held-out proxy (or every cross-validated one): they
    rank nothing, so whatever they propose is an accident of the sampler."""
    def constant(model: str) -> bool:
        held = fit["held_out"].get(model)
        if held is not None:
            return bool(np.ptp(held["predicted"]) == 0)
        return not np.isfinite(fit["cross_validated"][model]["spearman"])

    return [model for model in MODELS if constant(model)]


def proposer(fit: dict, model: str) -> str:
    """The predictor that proposes: `mix.search.model`, unless it is uninformative (see `uninformative`); then
    the informative one with the best cross-validated Spearman. With none informative, `model` still proposes
    (the report says the proposal is uninformed)."""
    if model not in fit["uninformative"]:
        return model
    informative = [m for m in MODELS if m not in fit["uninformative"]]
    if not informative:
        return model
    chosen = max(informative, key=lambda m: fit["cross_validated"][m]["spearman"])
    log.warning("round %d: %s predicted one constant for the held-out proxies; %s proposes instead",
                fit["round"], model, chosen)
    return chosen


def largest_tokens(cfg: dict) -> int:
    """The most training tokens a verified mixture gets: the epoch limit binds there."""
    return max([cfg["mix"]["search"]["tokens"], *(s["tokens"] for s in cfg["mix"]["verify"]["scales"])])


def final_stage(last_fit, data_dir, cfg: dict, data_id: str, out_path) -> dict:
    """The verification runs (every compared mixture at the proxy scale and at each larger scale) and the
    scaling grids of the chosen and the natural mixture."""
    mix = cfg["mix"]
    meta = read_meta(data_dir)
    fit = read_json(last_fit)
    mixtures = {CHOSEN: fit["chosen"]["weights"]}
    for name, definition in mix["mixtures"].items():
        mixtures[name] = resolve(definition, meta, f"mix.mixtures.{name}")
    best = sorted(fit["proxies"], key=lambda p: p["target"])[: mix["verify"]["top_proxies"]]
    for rank, proxy in enumerate(best):
        mixtures[f"proxy-{rank + 1}"] = proxy["weights"]
    trained = {p["run_id"]: p for p in fit["proxies"]}  # at the proxy scale, a proxy's run is reused
    scales = [{"d_model": mix["search"]["d_model"], "tokens": mix["search"]["tokens"]}, *mix["verify"]["scales"]]
    runs = {}
    if mix["verify"]["enabled"]:
        for scale_index, scale in enumerate(scales):
            for name, weights in mixtures.items():
                check_epochs(weights, scale["tokens"], meta, max_epochs=mix["max_epochs"], allow=mix["allow_repeats"],
                             key=f"mix.mixtures.{name}")
                for replicate in range(mix["verify"]["seeds"]):
                    run_id, record = _mixture_run(cfg, data_id, weights, scale["d_model"], scale["tokens"], replicate,
                                                  role="verify", mixture=name, scale=scale_index, names=[name])
                    if run_id in runs:  # the same weights under two names (the chosen one may be natural): one run
                        runs[run_id]["names"].append(name)
                    else:
                        runs[run_id] = record
                        if run_id in trained:
                            record["stage"] = f"round-{trained[run_id]['round']}"
    if mix["scaling"]["enabled"]:
        for name in (CHOSEN, NATURAL):
            grid = scaling_config(cfg, mixtures.get(name) or resolve(name, meta, name))
            for run_id, record in make_plan(grid, data_id)["runs"].items():
                check_epochs(record["spec"]["mixture"], record["D"], meta, max_epochs=mix["max_epochs"],
                             allow=mix["allow_repeats"], key=f"mix.scaling ({name})")
                if run_id in runs:
                    runs[run_id]["names"].append(name)
                else:
                    runs[run_id] = {**record, "role": "scaling", "mixture": name, "names": [name],
                                    "mixture_id": mixture_id(record["spec"]["mixture"])}
    write_json(out_path, runs)
    return runs


def scaling_config(cfg: dict, mixture) -> dict:
    """The study config of a mixture's scaling grid: `mix.scaling`'s budgets, sizes and ladder, that mixture,
    every run trained whole (no shared trunks: the grid is small)."""
    scaling = cfg["mix"]["scaling"]
    plan = {**cfg["plan"], "budgets": scaling["budgets"], "sizes_per_budget": scaling["sizes_per_budget"],
            "ladder": scaling["ladder"] or cfg["plan"]["ladder"]}
    return {**cfg, "plan": plan, "mix": {**cfg["mix"], "mixture": mixture},
            "train": {**cfg["train"], "branch_cooldowns": False}}


def check_search(config: dict) -> None:
    """What the search's later stages would refuse, checked when the workflow is parsed: the scaling grid
    (a budget too small for a shape, more sizes than the ladder has)."""
    mix = config["mix"]
    if mix["search"]["enabled"] and mix["scaling"]["enabled"]:
        try:
            make_plan(scaling_config(config, "natural"), "parse-time check")
        except UserError as err:
            raise UserError(f"mix.scaling: {err}") from None


def _window_matrix(result_paths, target, groups, natural: dict) -> np.ndarray:
    """(mixtures, windows): each run's final loss on the evaluation windows of the target's groups, each
    window scaled by its group's target weight over its group's window count, so that a row's mean is the
    run's target loss (groups have different numbers of windows) and resampling windows resamples it.
    `natural`: the natural mixture's weights, the target's with target `natural`."""
    import pandas as pd

    if target == NATURAL:
        weights = dict(natural)
    else:
        weights = {group: 1.0 for group in groups} if isinstance(target, str) else dict(target)
    total = sum(weights[g] for g in groups)
    rows = []
    for path in result_paths:
        table = pd.read_parquet(Path(path).with_name("eval_windows.parquet"))
        table = table[table["domain"].isin(groups)].sort_values(["domain", "window"])
        counts = table["domain"].map(table["domain"].value_counts())
        scale = table["domain"].map(weights) / total * len(table) / counts
        rows.append((table["loss"] * scale).to_numpy())
    return np.vstack(rows)


def summary_stage(fit_paths, final_runs_path, result_paths, cfg: dict, out_path) -> dict:
    """summary.json: rounds, the verification table, decision accuracy per larger scale, and the scaling
    comparison (the report draws its figures from it)."""
    from isoflop.mix.decide import decision_accuracy, divergence_warnings

    mix, target = cfg["mix"], cfg["mix"]["search"]["target"]
    fits = [read_json(path) for path in fit_paths]
    runs = read_json(final_runs_path)
    paths = {Path(path).parent.name: path for path in result_paths}
    results = {run_id: read_json(path) for run_id, path in paths.items()}
    rounds = [{"round": f["round"], "chosen": f["chosen"], "cross_validated": f["cross_validated"],
               "held_out": f["held_out"], "proxies": len(f["proxies"]), "proposer": f.get("proposer"),
               "uninformative": f.get("uninformative", [])} for f in fits]
    summary = {"target": target, "groups": fits[-1]["groups"], "natural": fits[-1]["natural"], "rounds": rounds, "verification": [],
               "decision_accuracy": [], "scaling": None}
    verify = {run_id: r for run_id, r in runs.items() if r["role"] == "verify"}
    by_scale = {}  # scale -> mixture -> its run ids, one per seed
    for run_id, record in sorted(verify.items(), key=lambda item: item[1].get("replicate", 0)):
        for name in record["names"]:
            by_scale.setdefault(record["scale"], {}).setdefault(name, []).append(run_id)
    for scale, named in by_scale.items():
        for name, run_ids in named.items():
            record = verify[run_ids[0]]
            summary["verification"].append({
                "mixture": name, "scale": scale, "d_model": record["d_model"],
                "tokens": record["spec"]["train"]["tokens"], "run_ids": run_ids, "mixture_id": record["mixture_id"],
                **verified_losses([results[run_id] for run_id in run_ids], target)})
    summary["verification"].sort(key=lambda row: (row["scale"], row["mixture"]))
    rows = {(row["scale"], row["mixture"]): row for row in summary["verification"]}
    summary["warnings"] = [f"d_model {rows[(scale, CHOSEN)]['d_model']}: {warning}" for scale in sorted(by_scale)
                           if (scale, CHOSEN) in rows and (scale, NATURAL) in rows
                           for warning in divergence_warnings(rows[(scale, CHOSEN)], rows[(scale, NATURAL)])]
    if verify:
        names = sorted(by_scale[0])
        groups = target_groups(target, summary["groups"])

        def seeds_of(scale, name):  # every mixture with as many seeds as the fewest has
            return by_scale[scale][name][:min(len(by_scale[scale][n]) for n in names)]

        def windows(scale, objective):  # (mixtures, seeds, windows or questions)
            if is_task_target(objective):
                return np.stack([question_matrix([results[run_id] for run_id in seeds_of(scale, n)], objective)
                                 for n in names])
            return np.stack([_window_matrix([paths[run_id] for run_id in seeds_of(scale, n)], objective, groups,
                                            summary["natural"]) for n in names])

        def decisions(objective) -> list[dict]:
            small, rows = windows(0, objective), []
            for scale in sorted(by_scale)[1:]:
                large = windows(scale, objective)
                accuracy = decision_accuracy(small, large, n_boot=mix["verify"]["bootstrap"], seed=cfg["seed"],
                                             chosen=names.index(CHOSEN))
                rows.append({
                    "scale": scale, "mixtures": names, "winner": names[int(np.argmin(large.mean(axis=(1, 2))))],
                    **{key: accuracy[key] for key in ("accuracy", "lo", "hi", "pairs", "seeds", "chosen_wins",
                                                      "chosen_wins_share")}})
            return rows

        summary["decision_accuracy"] = decisions(target)
        # the same decisions judged on every task metric the runs scored (DataDecide's question: which small-scale
        # metric predicts the large-scale order on the benchmarks)
        scored = {task: scores for task, scores in (results[next(iter(verify))].get("tasks") or {}).items()
                  if "per_question" in scores}  # results written before per-question scores have none
        summary["decision_accuracy_tasks"] = [
            {"task": task, "metric": metric, **row} for task in sorted(scored) for metric in TASK_METRICS
            for row in decisions(f"task:{task}:{metric}")]
    scaling = {run_id: r for run_id, r in runs.items() if r["role"] == "scaling"}
    if scaling:
        summary["scaling"] = _scaling(scaling, results, cfg)
    write_json(out_path, summary, allow_nan=True)
    return summary


def verified_losses(results: list[dict], target) -> dict:
    """A compared mixture's losses at one scale over its seeds' results: the target (the seeds' mean, and each
    seed's), the loss on the natural validation mixture and each group's loss (the seeds' means; None where a
    seed did not finish or an older result lacks it)."""
    targets = [target_loss(result, target) for result in results]
    finished = [result for result, value in zip(results, targets) if value is not None]
    naturals = [result.get("val_loss_natural") for result in finished]
    groups = sorted(set.intersection(*(set(result["val_loss_by_domain"]) for result in finished))) if finished else []
    return {"target": float(np.mean([v for v in targets if v is not None])) if finished else None,
            "targets": targets,
            "natural": float(np.mean(naturals)) if finished and None not in naturals else None,
            "groups": {g: float(np.mean([result["val_loss_by_domain"][g] for result in finished])) for g in groups}}


def _scaling(runs: dict, results: dict, cfg: dict) -> dict:
    """Each mixture's laws from its grid (the study's fit), and the gap chosen minus natural in compute-optimal
    loss at 10x the largest budget, with its interval."""
    from isoflop.compare import compare_frontiers
    from isoflop.fit import fit_study
    from isoflop.fit.frontier import optimal_loss
    from isoflop.stages import best_of_sweep, runs_table

    budget = 10 * max(cfg["mix"]["scaling"]["budgets"])
    fitted = {}
    for name in (NATURAL, CHOSEN):
        mine = {run_id: r for run_id, r in runs.items() if name in r["names"]}
        table = runs_table(mine, {run_id: results[run_id] for run_id in mine}, cfg["plan"]["flops_convention"])
        fitted[name] = fit_study(best_of_sweep(table), bootstrap=cfg["fit"]["bootstrap"], seed=cfg["seed"],
                                 huber_delta=cfg["fit"]["huber_delta"])
    # one law form for both mixtures, the Chinchilla law first (its bootstrap spreads the optimal loss, so the gap
    # has an interval), and only one with a finite optimum at the budget in both: a degenerate fit (alpha 77, A
    # overflowing, seen on a 3 x 3 grid) predicts NaN
    usable = [form for form in ("chinchilla", "isoflop")
              if all(law.get(form) and np.isfinite(optimal_loss(law[form], [budget])[0]).all()
                     for law in fitted.values())]
    if not usable:  # too few points, or only degenerate laws: the summary says so rather than failing
        warnings = [f"{name}: {warning}" for name, law in fitted.items() for warning in law.get("warnings", [])]
        why = f"no law form gives both mixtures a finite compute-optimal loss at {budget:.3g} FLOPs"
        log.warning("mix scaling: %s; warnings: %s", why, warnings)
        return {"not_fitted": f"{why}: {'; '.join(warnings)}"}
    laws = {name: {"law": usable[0], "fit": law[usable[0]],
                   "fits": [law[form] for form in ("chinchilla", "isoflop") if law.get(form)]}
            for name, law in fitted.items()}
    result = compare_frontiers(laws[NATURAL]["fit"], laws[CHOSEN]["fit"], budget,
                               span=laws[NATURAL]["fits"] + laws[CHOSEN]["fits"])
    return {"budget": budget, "laws": {name: law["law"] for name, law in laws.items()},
            "loss_natural": result["loss_a"], "loss_chosen": result["loss_b"], "gap": result["gap"],
            "excludes_zero": result["excludes_zero"], "comparison": as_lists(result)}


def as_lists(value):
    """`value` with its numpy arrays as lists, for JSON (the comparison's curves)."""
    if isinstance(value, dict):
        return {key: as_lists(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_lists(item) for item in value]
    return value.tolist() if isinstance(value, np.ndarray) else value
