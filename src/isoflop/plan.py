"""The run grid of a study (IsoFLOP design) and content-hash ids for every stage's output.

For each compute budget C the planner takes `sizes_per_budget` consecutive shapes of one ladder, centred on
the size the prior `tokens_per_param` expects to be optimal (N* = sqrt(C / (k * tokens_per_param)) with k the
FLOPs per parameter-token of the chosen convention), and gives each D = C / (FLOPs per token). Shapes are
shared across budgets, so one shape serves several budgets (and, with WSD, one trunk can serve them all).

Ids: every stage's output folder is named by a hash of everything that determines it, chained through its
inputs' ids, so a changed setting makes a new folder and an unchanged one is never recomputed.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import zlib

from isoflop.errors import UserError
from isoflop.tasks.results import study_tasks
from isoflop.tokens import tokenizer_settings, vocab_size

# N (which parameter count) and the FLOPs-per-token key of `flops_per_token` for each convention.
CONVENTIONS = {
    "nonembed_head_attention": ("nonembed_head", "total"),
    "nonembed_head": ("nonembed_head", "dense"),
    "nonembed": ("nonembed", "nonembed_6n"),
    "total": ("total", None),  # 6 * total parameters
}


def content_id(*parts) -> str:
    """A short stable hash of JSON-serialisable parts (key order does not matter)."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def stage_ids(config: dict, corpus_fingerprint: dict) -> dict[str, str]:
    """Ids of the data stages: corpus -> curated -> tokens, each chaining the one before."""
    corpus = content_id("corpus", config["corpus"], corpus_fingerprint)
    curated = content_id("curated", corpus, config["curate"], config["seed"])
    tokens = content_id("tokens", curated, tokenizer_settings(config["tokenizer"]))
    ids = {"corpus": corpus, "curated": curated, "tokens": tokens}
    if config["mix"]["groups"] == "clusters":  # the token folder whose groups are the curation clusters
        ids["groups"] = content_id("cluster-tokens", tokens)
    return ids


def training_data_id(ids: dict[str, str]) -> str:
    """The id of the token folder that runs train on: one group per domain, or per cluster."""
    return ids.get("groups", ids["tokens"])


def study_plan(config: dict) -> tuple[dict[str, str], dict]:
    """The data stages' ids and the training plan of a validated study config."""
    from isoflop.corpus import fingerprint
    from isoflop.mix.mixture import check_config

    check_config(config)
    ids = stage_ids(config, fingerprint(config["corpus"]))
    return ids, make_plan(config, training_data_id(ids))


def model_config(config: dict, d_model: int):
    from isoflop.train.shapes import ModelConfig

    m = config["model"]
    return ModelConfig.from_size(
        d_model,
        vocab_size=vocab_size(config["tokenizer"]),
        seq_len=m["seq_len"],
        norm=m["norm"],
        positions=m["positions"],
        qk_norm=m["qk_norm"],
        z_loss=m["z_loss"],
        tie_embeddings=m["tie_embeddings"],
    )


# Budgets are planned in the fullest accounting, whatever `plan.flops_convention` says: the convention only
# chooses which N and C the runs table and the laws use, so changing it refits without retraining.
PLANNING_CONVENTION = "nonembed_head_attention"


def convention_values(params: dict, flops: dict, convention: str) -> tuple[int, float]:
    """(N, FLOPs per token) of a shape under a convention of `CONVENTIONS`."""
    n_key, flops_key = CONVENTIONS[convention]
    return params[n_key], (flops[flops_key] if flops_key else 6 * params["total"])


def shape_accounting(config: dict, d_model: int) -> dict:
    """N under each convention, FLOPs per token, and the (N, FLOPs/token) that size the plan's budgets."""
    from isoflop.train.accounting import flops_per_token, param_counts

    cfg = model_config(config, d_model)
    params = param_counts(cfg)
    flops = flops_per_token(cfg)
    n_planning, per_token = convention_values(params, flops, PLANNING_CONVENTION)
    return {
        "model": cfg.to_dict(),
        "params": params,
        "flops_per_token": flops,
        "N": n_planning,
        "primary_flops_per_token": per_token,
    }


def peak_lr(train: dict, d_model: int) -> float:
    """The run's lr: under muP `train.lr` itself (the model scales it per layer with width), else `train.lr`
    scaled from `lr_reference_d_model` by `lr_width_exponent`."""
    if train["parametrization"] == "mup":
        return train["lr"]
    return train["lr"] * (train["lr_reference_d_model"] / d_model) ** train["lr_width_exponent"]


def _sizes_for_budget(budget: float, shapes: list[dict], plan: dict) -> list[dict]:
    """`sizes_per_budget` consecutive ladder shapes centred (in log N) on the prior's optimum."""
    k = shapes[0]["primary_flops_per_token"] / shapes[0]["N"]  # FLOPs per parameter-token, ~6
    n_expected = math.sqrt(budget / (k * plan["tokens_per_param"]))
    centre = min(range(len(shapes)), key=lambda i: abs(math.log(shapes[i]["N"] / n_expected)))
    width = plan["sizes_per_budget"]
    start = min(max(0, centre - width // 2), len(shapes) - width)
    return shapes[start : start + width]


def seed_for(study_seed: int, replicate: int) -> int:
    """Training seed of a replicate: shared by every shape and budget (common random numbers across the grid,
    and the same data order for a WSD trunk and its branches)."""
    return zlib.crc32(f"{study_seed}:{replicate}".encode()) & 0x7FFFFFFF


def attach_trunks(runs: list[dict], tokens_id: str) -> dict[str, dict]:
    """Group the wsd runs that differ only in their token budget under one constant-lr trunk (Hagele et al.
    2024) and return the trunks by id. Each such run gets `trunk_id` and `branch_step` (where its decay
    starts); it trains only its decay on top of the trunk's state at that step, which is bit-identical to the
    whole schedule from scratch. The trunk and the branch steps come from `isoflop.train.spec` (the one
    derivation of both)."""
    from isoflop.train.spec import branch_step, trunk_spec

    groups: dict[str, list[dict]] = {}
    for run in runs:
        run["trunk_id"], run["branch_step"] = None, None
        if run["spec"]["train"]["schedule"] != "wsd":
            continue
        shared = json.loads(json.dumps(run["spec"]))
        shared["train"].pop("tokens")
        run["branch_step"] = branch_step(run["spec"])
        if run["branch_step"] > 0:
            groups.setdefault(content_id("trunk-group", tokens_id, shared), []).append(run)
    trunks = {}
    for members in groups.values():
        if len(members) < 2:  # a trunk serving one run saves nothing
            continue
        steps = sorted({run["branch_step"] for run in members})
        spec = trunk_spec([run["spec"] for run in members])
        first = members[0]
        trunk_id = content_id("trunk", tokens_id, spec, steps)
        trunks[trunk_id] = {"trunk_id": trunk_id, "spec": spec, "branch_steps": steps,
                            "run_ids": [run["run_id"] for run in members], "d_model": first["d_model"],
                            "C": spec["train"]["tokens"] * first["C"] / first["D"]}
        for run in members:
            run["trunk_id"] = trunk_id
    for run in runs:  # a run without a trunk trains its whole schedule
        if run["trunk_id"] is None:
            run["branch_step"] = None
    return trunks


def compute_summary(runs: list[dict], trunks: dict[str, dict]) -> dict:
    """Training FLOPs of the grid as separate runs and as planned (trunks plus each run's own steps)."""
    separate = sum(run["C"] for run in runs)
    planned = sum(t["C"] for t in trunks.values())
    for run in runs:
        own = run["steps"] - (run["branch_step"] if run["trunk_id"] else 0)
        planned += run["C"] * own / run["steps"]
    return {"separate_flops": separate, "planned_flops": planned, "saved_fraction": 1 - planned / separate,
            "trunks": len(trunks), "runs": len(runs)}


def _replicated(b_index: int, plan: dict) -> bool:
    """Whether the budget at `b_index` trains `plan.seeds` replicates: every budget, or only the
    `plan.replicated_budgets` smallest (seed replicates at a few cheap grid points measure the run-to-run noise
    the fits need at a fraction of the cost of replicating the grid)."""
    return sorted(plan["budgets"]).index(plan["budgets"][b_index]) < _replicated_count(plan)


def _replicated_count(plan: dict) -> int:
    """How many budgets train `plan.seeds` replicates (`plan.replicated_budgets`, 0 meaning all)."""
    budgets = len(plan["budgets"])
    return budgets if plan["replicated_budgets"] == 0 else min(plan["replicated_budgets"], budgets)


def rule_value(rule: dict, n: float, d: float) -> float:
    """A fitted hyperparameter rule's value c N^p D^q (the form of `isoflop.fit.hyper`)."""
    return rule["c"] * n ** rule["p"] * d ** rule["q"]


def point_settings(config: dict, shape: dict, budget: float) -> tuple[float, int]:
    """(peak lr, batch size) of a grid point before its sweep multipliers: from `train.hyperparameters`' rules
    where given, at the point's N (under `plan.flops_convention`, as the runs table and the fitted laws count
    it) and D (the budget's tokens before rounding to whole steps); else the fixed settings."""
    train = config["train"]
    rules = train["hyperparameters"]
    n, _ = convention_values(shape["params"], shape["flops_per_token"], config["plan"]["flops_convention"])
    d = budget / shape["primary_flops_per_token"]
    lr = rule_value(rules["lr"], n, d) if rules["lr"] else peak_lr(train, shape["model"]["d_model"])
    batch = max(1, round(rule_value(rules["batch_size"], n, d))) if rules["batch_size"] else train["batch_size"]
    return lr, batch


def batch_sizes(base: int, multipliers: list[float]) -> dict[float, int]:
    """The batch size (sequences per step) of each of `train.batch_multipliers`: the point's batch size times
    it, which must be a whole number of sequences."""
    sizes = {}
    for multiplier in multipliers:
        size = base * multiplier
        if size < 1 or abs(size - round(size)) > 1e-9:
            raise UserError(f"config key 'train.batch_multipliers' has {multiplier:g}: the batch size {base} "
                            f"times it is {size:g}, not a whole number of sequences")
        sizes[multiplier] = round(size)
    return sizes


def run_spec(config: dict, shape: dict, *, tokens: int, lr_multiplier: float, seed: int, mixture,
             lr: float | None = None, batch_size: int | None = None) -> dict:
    """The spec of one run of a shape (from `shape_accounting`): the model, the mixture (a name is resolved
    against the token counts when the run starts), and the study's optimisation settings. `lr` (before the
    multiplier) and `batch_size` default to the fixed settings (`point_settings` gives a grid point's)."""
    train = config["train"]
    return {
        "model": shape["model"],
        "mixture": mixture,
        "train": {
            "tokens": tokens,
            "batch_size": train["batch_size"] if batch_size is None else batch_size,
            "lr": (peak_lr(train, shape["model"]["d_model"]) if lr is None else lr) * lr_multiplier,
            "min_lr_frac": train["min_lr_frac"],
            "warmup_steps": train["warmup_steps"],
            "schedule": train["schedule"],
            "decay_frac": train["decay_frac"],
            "weight_decay": train["weight_decay"],
            "beta1": train["beta1"],
            "beta2": train["beta2"],
            "grad_clip": train["grad_clip"],
            "seed": seed,
            "eval_every": train["eval_every"],
            "eval_tokens": train["eval_tokens"],
            "checkpoint_every": train["checkpoint_every"],
            # optional keys enter the spec only when set, so existing run ids stay valid
            **({"decay_shape": train["decay_shape"]} if train["schedule"] == "wsd" else {}),
            **({"compile": True} if train["compile"] else {}),
            **({"dtype": train["dtype"]} if train["dtype"] != "float32" else {}),
            **({"tasks": study_tasks(config)} if (config.get("eval") or {}).get("tasks") else {}),
            **({"parametrization": "mup", "mup_base_d_model": train["lr_reference_d_model"]}
               if train["parametrization"] == "mup" else {}),
        },
    }


def run_record(config: dict, shape: dict, spec: dict, data_id: str, *, budget: float, replicate: int = 0,
               lr_multiplier: float = 1.0, batch_multiplier: float = 1.0) -> dict:
    """A run as the plan (and the runs table, the fit and tracking) know it: its id, shape, N, D and C under
    the study's `plan.flops_convention`, and its spec."""
    n_reported, reported_per_token = convention_values(shape["params"], shape["flops_per_token"],
                                                       config["plan"]["flops_convention"])
    tokens_per_step = spec["train"]["batch_size"] * spec["model"]["seq_len"]
    return {
        "run_id": content_id("run", data_id, spec),
        "budget": float(budget),
        "d_model": shape["d_model"],
        "n_layers": shape["model"]["n_layers"],
        "n_heads": shape["model"]["n_heads"],
        "N": n_reported,
        "params": shape["params"],
        "flops_per_token": shape["flops_per_token"],
        "D": spec["train"]["tokens"],
        "C": spec["train"]["tokens"] * reported_per_token,
        "steps": spec["train"]["tokens"] // tokens_per_step,
        "replicate": replicate,
        "lr_multiplier": lr_multiplier,
        "batch_multiplier": batch_multiplier,
        "flops_convention": config["plan"]["flops_convention"],
        "spec": spec,
    }


def make_plan(config: dict, tokens_id: str) -> dict:
    """The study's training plan: `runs` (run_id -> run, in a stable order), `trunks` (trunk_id -> trunk, for
    wsd with branched cooldowns) and `compute` (the FLOPs summary). Raises UserError naming the key of an
    impossible grid."""
    plan, train = config["plan"], config["train"]
    ladder = sorted(set(plan["ladder"]))
    if plan["sizes_per_budget"] > len(ladder):
        raise UserError(
            f"config key 'plan.sizes_per_budget' = {plan['sizes_per_budget']} exceeds the {len(ladder)} shapes "
            f"of plan.ladder; allowed values: 1..{len(ladder)}"
        )
    budgets = len(plan["budgets"])
    replicated = _replicated_count(plan)
    seeded_budgets = replicated * plan["seeds"] + (budgets - replicated)
    planned = (seeded_budgets * plan["sizes_per_budget"] * len(train["lr_multipliers"])
               * len(train["batch_multipliers"]))
    if planned > plan["max_runs"]:  # counted, not built: a grid of 10^6 runs is refused at once
        raise UserError(
            f"config key 'plan.max_runs' = {plan['max_runs']}: the grid would make {planned:,} training runs "
            f"({budgets} budgets, {replicated} of them x {plan['seeds']} seeds, x {plan['sizes_per_budget']} sizes x "
            f"{len(train['lr_multipliers'])} learning rates x {len(train['batch_multipliers'])} batch sizes); "
            "shrink it or raise plan.max_runs"
        )
    shapes = sorted((shape_accounting(config, d) | {"d_model": d} for d in ladder), key=lambda s: s["N"])
    seq_len = config["model"]["seq_len"]
    runs = []
    for b_index, budget in enumerate(plan["budgets"]):
        for shape in _sizes_for_budget(budget, shapes, plan):
            lr, batch = point_settings(config, shape, budget)
            sizes = batch_sizes(batch, train["batch_multipliers"])
            # every batch size of a grid point trains the same D (so a batch sweep's runs group on (N, D), as
            # the lr sweep's do): D is a whole number of steps at each, a multiple of their least common
            # tokens per step
            token_unit = math.lcm(*sizes.values()) * seq_len
            tokens = math.ceil(budget / shape["primary_flops_per_token"] / token_unit) * token_unit
            tokens_per_step = max(sizes.values()) * seq_len
            steps = tokens // tokens_per_step
            if steps < train["min_steps"]:
                smallest = shapes[0]
                minimum = train["min_steps"] * tokens_per_step * smallest["primary_flops_per_token"]
                raise UserError(
                    f"config key 'plan.budgets[{b_index}]' = {budget:.3g} FLOPs is too small for model "
                    f"d_model={shape['d_model']} (N={shape['N']:,}): {steps} steps < train.min_steps="
                    f"{train['min_steps']}; allowed values: budgets >= {minimum:.3g} FLOPs for the smallest "
                    f"model, more for larger ones (or lower train.batch_size / train.min_steps)"
                )
            replicates = range(plan["seeds"]) if _replicated(b_index, plan) else range(1)
            for replicate, lr_multiplier, batch_multiplier in itertools.product(
                    replicates, train["lr_multipliers"], train["batch_multipliers"]):
                spec = run_spec(config, shape, tokens=tokens, lr_multiplier=lr_multiplier,
                                seed=seed_for(config["seed"], replicate),
                                mixture=config["mix"]["mixture"] or "natural", lr=lr,
                                batch_size=sizes[batch_multiplier])
                runs.append(run_record(config, shape, spec, tokens_id, budget=budget, replicate=replicate,
                                       lr_multiplier=lr_multiplier, batch_multiplier=batch_multiplier))
    trunks = attach_trunks(runs, tokens_id) if train["branch_cooldowns"] else {}
    runs += forecast_runs(config, shapes, tokens_id)
    for run in runs:
        run.setdefault("trunk_id", None)
        run.setdefault("branch_step", None)
    return {"runs": {run["run_id"]: run for run in runs}, "trunks": trunks, "compute": compute_summary(runs, trunks),
            "flops_convention": plan["flops_convention"]}


def forecast_runs(config: dict, shapes: list[dict], tokens_id: str) -> list[dict]:
    """One run per `plan.forecast_budgets` budget at the prior's compute-optimal size, flagged `forecast`: the
    fit leaves it out and forecasts its loss, and its training waits for that forecast (docs/forecasts.md).
    It trains its whole schedule alone: in a trunk it would lengthen the trunk the fitted runs branch from."""
    plan = config["plan"]
    largest = max(plan["budgets"])
    runs = []
    for index, budget in enumerate(plan["forecast_budgets"]):
        if budget <= largest:
            raise UserError(f"config key 'plan.forecast_budgets[{index}]' = {budget:.3g} FLOPs is not beyond the "
                            f"largest fitted budget {largest:.3g}: a forecast tests the law outside its data")
        [shape] = _sizes_for_budget(budget, shapes, {**plan, "sizes_per_budget": 1})
        lr, batch = point_settings(config, shape, budget)
        token_unit = batch * config["model"]["seq_len"]
        tokens = math.ceil(budget / shape["primary_flops_per_token"] / token_unit) * token_unit
        spec = run_spec(config, shape, tokens=tokens, lr_multiplier=1.0, seed=seed_for(config["seed"], 0),
                        mixture=config["mix"]["mixture"] or "natural", lr=lr, batch_size=batch)
        runs.append(run_record(config, shape, spec, tokens_id, budget=budget) | {"forecast": True})
    return runs
