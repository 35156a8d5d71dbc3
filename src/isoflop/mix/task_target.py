"""Task metrics as the mixture search's target: choose data by the benchmarks (DataDecide, Magnusson et al. 2025).

A task target names a metric of the study's `eval.tasks` (see `isoflop.tasks.results`):

    task:<task>:<metric>     one task's metric; <task> is a task name of eval.tasks (arc_easy) or its key
                             (arc_easy_rc_0shot)
    tasks:<metric>           the mean of the metric over every task of eval.tasks
    {task:<task>:<metric>: weight, ...}   a weighted mean

The search minimises: bpb as it is, and 1 - value for correct_prob, acc and acc_len_norm (higher is better).
A run's value is its mean over the task's scored questions, so resampling questions resamples it, as the
decision accuracy does with evaluation windows for a loss target.
"""

from __future__ import annotations

import re

import numpy as np

from isoflop.errors import UserError
from isoflop.tasks.results import METRICS

ONE, ALL = "task:", "tasks:"
_KEY = re.compile(r"^(?P<name>.+)_(?:rc|mc)_\d+shot$")


def is_task_target(target) -> bool:
    """Whether `mix.search.target` is a task target (a dict is one when any of its keys is)."""
    if isinstance(target, str):
        return target.startswith((ONE, ALL))
    return isinstance(target, dict) and any(str(key).startswith((ONE, ALL)) for key in target)


def check_task_target(target, config: dict) -> None:
    """A task target checked when the workflow is parsed, against the config's `eval.tasks` (UserError naming
    mix.search.target)."""
    configured = (config.get("eval") or {}).get("tasks") or []
    if not configured:
        raise UserError(f"mix.search.target = {target!r}: a task target needs eval.tasks (the tasks every run scores)")
    keys = [f"{t['name']}_{t.get('format', 'rc')}_{t.get('shots', 0)}shot" for t in configured]
    terms = target.items() if isinstance(target, dict) else [(target, 1.0)]
    for term, _ in terms:
        key = f"mix.search.target.{term}" if isinstance(target, dict) else "mix.search.target"
        if not str(term).startswith((ONE, ALL)):
            raise UserError(f"{key}: a weighted target mixes task metrics with group losses; use one kind")
        _parse(term, keys, key)


def task_terms(target, keys) -> list[tuple[str, str, float]]:
    """(task key, metric, weight) of every term of a task target over the task keys a run scored."""
    terms = target.items() if isinstance(target, dict) else [(target, 1.0)]
    return [(task, metric, float(weight) / len(tasks)) for term, weight in terms
            for tasks, metric in [_parse(term, keys, "mix.search.target")] for task in tasks]


def _parse(term: str, keys, key: str) -> tuple[list[str], str]:
    """The task keys and the metric of one term."""
    if term.startswith(ALL):
        tasks, metric = list(keys), term[len(ALL):]
    else:
        name, _, metric = term[len(ONE):].rpartition(":")
        tasks = [k for k in keys if k == name or ((m := _KEY.match(k)) is not None and m["name"] == name)]
        if len(tasks) != 1:
            raise UserError(f"{key} = {term!r}: {name!r} names {len(tasks)} of the tasks scored ({', '.join(keys)}); "
                            "expected one (write task:<task>:<metric>)")
    if metric not in METRICS:
        raise UserError(f"{key} = {term!r}: unknown task metric {metric!r}; expected one of {', '.join(METRICS)}")
    return tasks, metric


def minimised(metric: str, values):
    """What the search minimises of a metric: bpb itself, 1 - value of the others (higher is better)."""
    values = np.asarray(values, dtype=float)
    return values if metric == "bpb" else 1.0 - values


def task_target_value(result: dict, target) -> float | None:
    """A finished run's task target; None for a run that did not finish ok or has no task scores."""
    tasks = result.get("tasks")
    if result.get("status") != "ok" or not tasks:
        return None
    terms = task_terms(target, sorted(tasks))
    total = sum(weight for _, _, weight in terms)
    values = [weight * float(minimised(metric, tasks[task][metric])) for task, metric, weight in terms]
    return None if any(not np.isfinite(v) for v in values) else float(sum(values) / total)


def question_matrix(results: list[dict], target) -> np.ndarray:
    """(runs, questions): each run's minimised metric per scored question of the target's tasks, each scaled by
    its term's weight over its task's share of the questions, so that a row's mean is the run's target and
    resampling columns resamples questions (the task counterpart of `search._window_matrix`)."""
    keys = sorted(results[0]["tasks"])
    terms = task_terms(target, keys)
    total = sum(weight for _, _, weight in terms)
    sizes = {task: len(results[0]["tasks"][task]["per_question"][metric]) for task, metric, _ in terms}
    width = sum(sizes.values())
    rows = []
    for result in results:
        row = []
        for task, metric, weight in terms:
            values = result["tasks"][task].get("per_question", {}).get(metric)
            if values is None or len(values) != sizes[task]:
                raise UserError(f"task {task}: runs scored different questions (or an older result lacks "
                                "per_question); rerun them with the same eval.tasks")
            row.append(minimised(metric, values) * weight / total * width / sizes[task])
        rows.append(np.concatenate(row))
    return np.vstack(rows)
