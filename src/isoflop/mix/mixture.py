"""A data mixture: one weight per group (a corpus domain or a curation cluster), checked and content-hashed.

A mixture is defined in config as a name (`natural`: proportional to the groups' training tokens;
`uniform`) or as explicit weights. `resolve` turns a definition into weights against a token folder's
meta.json (whose `domains` are the groups; see `isoflop.tokens`), and refuses an invalid one with a message
naming the config key and the group. Its id is a hash of the weights, so runs under different mixtures are
different runs.
"""

from __future__ import annotations

import math

from isoflop.errors import UserError
from isoflop.plan import content_id

NAMED = ("natural", "uniform")
SUM_TOLERANCE = 1e-6


def mixture_id(weights: dict[str, float]) -> str:
    """The content hash of a mixture's weights (group order does not matter)."""
    return content_id("mixture", {group: float(weight) for group, weight in weights.items()})


def check_weights(weights, groups, key: str) -> dict[str, float]:
    """Explicit weights checked against the known group names: each a finite number >= 0, summing to 1
    within 1e-6. Returns them as floats over every group (absent groups weigh 0)."""
    if not isinstance(weights, dict) or not weights:
        raise UserError(f"{key}: expected natural, uniform or a mapping {{group: weight}}, got {weights!r}")
    for group, weight in weights.items():
        if group not in groups:
            raise UserError(f"{key}.{group}: unknown group {group!r}; the groups are {sorted(groups)}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
            raise UserError(f"{key}.{group}: weight {weight!r} is not a finite number")
        if weight < 0:
            raise UserError(f"{key}.{group}: weight {weight} is negative")
    total = sum(weights.values())
    if abs(total - 1.0) > SUM_TOLERANCE:
        raise UserError(f"{key}: weights sum to {total:.9g}, not 1 (within {SUM_TOLERANCE})")
    return {group: float(weights.get(group, 0.0)) for group in sorted(groups)}


def check_definition(definition, groups, key: str) -> None:
    """A config definition checked when the workflow is parsed, before any work: a name, or weights over
    `groups` (names known from the config alone)."""
    if isinstance(definition, str):
        if definition not in NAMED:
            raise UserError(f"{key} = {definition!r}: expected one of {list(NAMED)} or explicit weights")
        return
    check_weights(definition, groups, key)


def resolve(definition, meta: dict, key: str) -> dict[str, float]:
    """The weights of a definition over the groups of a token folder's meta.json; a group with weight but no
    training tokens is refused."""
    tokens = {group: info["train_tokens"] for group, info in meta["domains"].items()}
    if definition == "natural":
        total = sum(tokens.values())
        weights = {group: count / total for group, count in sorted(tokens.items())}
    elif definition == "uniform":
        weights = {group: 1.0 / len(tokens) for group in sorted(tokens)}
    else:
        weights = check_weights(definition, tokens, key)
    for group, weight in weights.items():
        if weight > 0 and tokens[group] == 0:
            raise UserError(f"{key}.{group}: group {group!r} has no training tokens")
    return weights


def epochs(weights: dict[str, float], total_tokens: int, meta: dict) -> dict[str, float]:
    """How many times a run of `total_tokens` under `weights` is expected to see each group's training tokens."""
    return {group: weight * total_tokens / meta["domains"][group]["train_tokens"] if weight > 0 else 0.0
            for group, weight in weights.items()}


def check_epochs(weights: dict[str, float], total_tokens: int, meta: dict, *, max_epochs: float, allow: bool,
                 key: str) -> dict[str, float]:
    """Refuse (unless `allow`) a mixture that would repeat a group more than `max_epochs` times; returns the
    epochs per group."""
    per_group = epochs(weights, total_tokens, meta)
    over = {group: value for group, value in per_group.items() if value > max_epochs}
    if over and not allow:
        group, value = max(over.items(), key=lambda item: item[1])
        raise UserError(f"{key}.{group}: {total_tokens:,} training tokens would repeat group {group!r} "
                        f"{value:.2f} times, more than mix.max_epochs = {max_epochs} (or set mix.allow_repeats)")
    return per_group


def config_groups(config: dict) -> list[str]:
    """The group names a config implies, known before any data exists: its domains, or clusters c0..c{k-1}."""
    if config["mix"]["groups"] == "clusters":
        curate = config["curate"]
        count = curate["cluster"]["n_clusters"] if curate["embed"]["enabled"] else 1
        return [cluster_group(index) for index in range(count)]
    corpus = config["corpus"]
    domains = list(corpus["stdlib"]["domains"]) if corpus["stdlib"]["enabled"] else []
    if corpus["synthetic"]["enabled"]:
        domains.append(corpus["synthetic"]["domain"])
    domains.extend(source["domain"] for source in corpus["sources"])
    return sorted(set(domains))


def cluster_group(cluster: int) -> str:
    """The group name of a curation cluster."""
    return f"c{int(cluster)}"


def check_config(config: dict) -> None:
    """Every mixture the config defines, checked when the workflow is parsed."""
    mix = config["mix"]
    groups = config_groups(config)
    if mix["mixture"] is not None:
        check_definition(mix["mixture"], groups, "mix.mixture")
    for name, definition in mix["mixtures"].items():
        check_definition(definition, groups, f"mix.mixtures.{name}")
    target = mix["search"]["target"]
    from isoflop.mix.task_target import check_task_target, is_task_target

    if is_task_target(target):
        check_task_target(target, config)
    elif isinstance(target, str) and target not in ("mean", "natural") and target not in groups:
        raise UserError(f"mix.search.target = {target!r}: expected natural, mean, a group ({sorted(groups)}) or "
                        "weights")
    elif isinstance(target, dict):
        for group in target:
            if group not in groups:
                raise UserError(f"mix.search.target.{group}: unknown group {group!r}; the groups are {sorted(groups)}")
    for group in mix["search"]["bounds"]:
        if group not in groups:
            raise UserError(f"mix.search.bounds.{group}: unknown group {group!r}; the groups are {sorted(groups)}")
    from isoflop.mix.search import check_search

    check_search(config)


def check_stage(data_dir, definition, tokens: int, out_path, *, max_epochs: float, allow: bool) -> dict:
    """The grid's mixture (`mix.mixture`) resolved against the token folder and checked against the epoch
    limit at the grid's largest run, before any training job starts; writes weights and epochs per group."""
    from isoflop.tokens import read_meta
    from isoflop.workflow import write_json

    meta = read_meta(data_dir)
    weights = resolve(definition or "natural", meta, "mix.mixture")
    per_group = check_epochs(weights, tokens, meta, max_epochs=max_epochs, allow=allow, key="mix.mixture")
    checked = {"mixture_id": mixture_id(weights), "weights": weights, "epochs_at_largest_run": per_group}
    write_json(out_path, checked)
    return checked
