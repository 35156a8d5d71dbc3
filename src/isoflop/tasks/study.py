"""Tasks in a study: the `eval.tasks` settings, the evaluation of a finished run, its runs-table columns and MLflow
metrics, and the report's section (task bpb against compute, and each metric's signal-to-noise ratio).

A run evaluates its tasks once, at its end, on the model it just trained: the questions come from the OLMES
request files (`isoflop.tasks.olmes`), tokenised by the run's own tokenizer, each context opened by the EOS id
that precedes every document in isoflop's token streams, and truncated from the left to the model's `seq_len`.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from isoflop.errors import UserError
from isoflop.tasks.metrics import METRICS

# Below this ratio of spread across the study's models to run-to-run noise a metric cannot rank models
# (Heineman et al. 2025 find decisions unreliable well above 1; 2 is a lenient floor for a small study).
SNR_THRESHOLD = 2.0
FIGURE = "task_bpb.png"
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


def evaluate_run_tasks(model, tasks: list[dict] | tuple, tokens_dir, device) -> dict:
    """The result.json fields of a finished run's task evaluation: {"tasks": {key: metrics}, "task_seconds"};
    nothing for a run without tasks."""
    if not tasks:
        return {}
    from tokenizers import Tokenizer

    from isoflop.tasks.metrics import evaluate_questions
    from isoflop.tasks.olmes import load_questions
    from isoflop.tokens import EOS

    started = time.perf_counter()
    path = Path(tokens_dir) / "tokenizer.json"
    if not path.exists():
        raise UserError(f"task evaluation needs the run's tokenizer, {path}, which is missing")
    tokenizer = Tokenizer.from_file(str(path))

    def encode(text: str) -> list[int]:
        return tokenizer.encode(text, add_special_tokens=False).ids

    results = {}
    for task in tasks:
        questions = load_questions(task["name"], task["variant"], task["limit"])
        metrics = evaluate_questions(model, encode, questions, model.cfg.seq_len,
                                     start_id=tokenizer.token_to_id(EOS), device=str(device))
        metrics["chance"] = float(np.mean([1 / len(q.continuations) for q in questions]))
        results[task_key(task)] = metrics
    return {"tasks": results, "task_seconds": time.perf_counter() - started}


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


def signal_to_noise(runs) -> list[dict]:
    """Per task column of the runs table: its signal (standard deviation across the study's finished runs of
    replicate 0), its noise (pooled standard deviation across seeds at the replicated grid points) and their ratio
    (Heineman et al. 2025 measure noise over a run's last checkpoints; a study evaluates tasks at each run's end,
    so its seeds measure the noise). Noise and ratio are None without replicated runs."""
    import pandas as pd

    finished = runs[runs["status"] == "ok"] if "status" in runs else runs
    rows = []
    for column in (c for c in finished.columns if c.startswith("task_") and c.endswith(METRICS)):
        values = pd.to_numeric(finished[column], errors="coerce")
        base = values[finished["replicate"] == 0] if "replicate" in finished else values
        signal = float(base.std()) if base.notna().sum() > 1 else float("nan")
        noise = _seed_noise(finished.assign(_value=values))
        ratio = signal / noise if noise and noise > 0 and math.isfinite(signal) else None
        rows.append({"column": column, "signal": signal, "noise": noise, "snr": ratio,
                     "fit_for_decisions": None if ratio is None else ratio >= SNR_THRESHOLD})
    return rows


def _seed_noise(runs) -> float | None:
    """Pooled within-group standard deviation of `_value` over grid points (budget, N) run with several seeds."""
    if "replicate" not in runs or not (runs["replicate"] > 0).any():
        return None
    squares, dof = 0.0, 0
    for _, group in runs.groupby(["budget", "N"]):
        values = group["_value"].dropna()
        if len(values) > 1:
            squares += float(((values - values.mean()) ** 2).sum())
            dof += len(values) - 1
    return math.sqrt(squares / dof) if dof else None


def report_section(runs, figures_dir) -> str | None:
    """The report's task section as markdown (None when no run evaluated a task): a figure of task bpb against
    compute, which accuracy metrics are still at chance, and each metric's signal-to-noise ratio with the metrics
    below `SNR_THRESHOLD` flagged as unfit for decisions."""
    bpb_columns = sorted(c for c in runs.columns if c.startswith("task_") and c.endswith("_bpb"))
    if not bpb_columns:
        return None
    finished = runs[runs["status"] == "ok"] if "status" in runs else runs
    keys = [column[len("task_"):-len("_bpb")] for column in bpb_columns]
    _plot_task_bpb(finished, keys, Path(figures_dir) / FIGURE)
    lines = ["## Downstream tasks", "",
             ("Each run is scored at its end on OLMES questions (docs/tasks.md): bits per byte of the correct "
              "answer (bpb), the probability of the correct choice (correct_prob), accuracy (acc) and "
              "length-normalised accuracy (acc_len_norm)."), "",
             f"![task bpb against training compute](figures/{FIGURE})", ""]
    chance = _chance_lines(finished, keys)
    if chance:
        lines += chance + [""]
    lines += ["| metric | signal (sd across runs) | noise (sd across seeds) | SNR | fit for decisions |",
              "|---|---|---|---|---|"]
    for row in signal_to_noise(runs):
        noise = "n/a" if row["noise"] is None else f"{row['noise']:.4f}"
        ratio = "n/a" if row["snr"] is None else f"{row['snr']:.1f}"
        verdict = {None: "unknown (no replicated runs)", True: "yes", False: f"**no** (SNR < {SNR_THRESHOLD:g})"}
        lines.append(f"| {row['column'][len('task_'):]} | {row['signal']:.4f} | {noise} | {ratio} | "
                     f"{verdict[row['fit_for_decisions']]} |")
    return "\n".join(lines) + "\n"


def _chance_lines(runs, keys: list[str]) -> list[str]:
    """One line per accuracy metric whose best run is within two binomial standard errors of chance."""
    lines = []
    for key in keys:
        chance_col, count_col = f"task_{key}_chance", f"task_{key}_n_questions"
        for metric in ("acc", "acc_len_norm"):
            column = f"task_{key}_{metric}"
            if column not in runs or runs[column].isna().all():
                continue
            chance = float(runs[chance_col].mean()) if chance_col in runs else None
            n = float(runs[count_col].mean()) if count_col in runs else None
            best = float(runs[column].max())
            if chance is not None and n:
                margin = 2 * math.sqrt(chance * (1 - chance) / n)
                state = "still at chance" if best <= chance + margin else "above chance"
                lines.append(f"- {key} {metric}: best run {best:.3f}, chance {chance:.3f}: {state}.")
    return lines


def _plot_task_bpb(runs, keys: list[str], path) -> None:
    import matplotlib.pyplot as plt

    from isoflop.plots import axis_labels, save_figure

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for key in keys:
        column = f"task_{key}_bpb"
        ax.scatter(runs["C"], runs[column], s=14, label=key)
    ax.set_xscale("log")
    convention = runs["flops_convention"].iloc[0] if "flops_convention" in runs and len(runs) else None
    ax.set_xlabel(axis_labels(convention)[1])
    ax.set_ylabel("task bpb of the correct answer")
    ax.legend(fontsize=7)
    save_figure(fig, path)
