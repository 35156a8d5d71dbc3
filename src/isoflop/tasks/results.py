"""What a study records of its downstream tasks, without torch: the `eval.tasks` settings a run spec carries,
a task setting's key, the metrics' names, and a run result's runs-table columns and MLflow metrics (read by
plan, stages and track; the evaluation itself is `isoflop.tasks.evaluate`)."""

from __future__ import annotations

import math

from isoflop.errors import UserError

# the four numbers of a task evaluation, as the OLMo ladder computes them (isoflop.tasks.metrics)
METRICS = ("bpb", "correct_prob", "acc", "acc_len_norm")
# what the runs table holds per task: the metrics, then what the report needs to say whether accuracy is at chance
TABLE_FIELDS = (*METRICS, "chance", "n_questions")


def study_tasks(config: dict) -> list[dict]:
    """`eval.tasks` of a validated config as the run spec carries them: name, variant (format and shots, e.g.
    rc_0shot) and limit, each checked against the installed request files (UserError naming the key)."""
    from isoflop.tasks.olmes import available

    tasks = (config.get("eval") or {}).get("tasks") or []
    if not tasks:
        return []
    known = available()
    settings = []
    for i, task in enumerate(tasks):
        variant = f"{task.get('format', 'rc')}_{task.get('shots', 0)}shot"
        if task["name"] not in known:
            raise UserError(f"eval.tasks[{i}].name={task['name']!r}: not an OLMES task; known: {', '.join(known)}")
        if variant not in known[task["name"]]:
            raise UserError(f"eval.tasks[{i}]: {task['name']} has no {variant} requests; it has "
                            f"{', '.join(known[task['name']])}")
        settings.append({"name": task["name"], "variant": variant, "limit": int(task.get("limit", 100))})
    keys = [task_key(task) for task in settings]
    if len(set(keys)) < len(keys):
        raise UserError(f"eval.tasks names a task twice: {', '.join(keys)}")
    return settings


def task_key(task: dict) -> str:
    """The name of a task setting in results, columns and metrics: e.g. arc_easy_rc_0shot."""
    return f"{task['name']}_{task['variant']}"


def task_columns(result: dict) -> dict:
    """The runs table's task columns of one run's result: task_<key>_<field> for every field of TABLE_FIELDS."""
    return {f"task_{key}_{field}": _number(metrics.get(field))
            for key, metrics in sorted((result.get("tasks") or {}).items()) for field in TABLE_FIELDS}


def task_tracking_metrics(result: dict) -> dict:
    """The MLflow metrics of one run's task evaluation: final.task.<key>.<metric>."""
    return {f"final.task.{key}.{metric}": value
            for key, metrics in sorted((result.get("tasks") or {}).items()) for metric in METRICS
            if (value := metrics.get(metric)) is not None and math.isfinite(value)}


def _number(value) -> float:
    return float(value) if value is not None and math.isfinite(float(value)) else float("nan")
