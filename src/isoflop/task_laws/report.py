"""The report's downstream-task section: which metrics carry signal at this scale (Heineman et al. 2025's
signal-to-noise ratio) and which accuracies are still at chance, with a figure of task bpb against compute."""

from __future__ import annotations

import math
from pathlib import Path

from isoflop.plots.tasks import task_bpb_figure
from isoflop.tasks.results import METRICS

# Below this ratio of spread across the study's models to run-to-run noise a metric cannot rank models
# (Heineman et al. 2025 find decisions unreliable well above 1; 2 is a lenient floor for a small study).
SNR_THRESHOLD = 2.0
FIGURE = "task_bpb.png"


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
    task_bpb_figure(finished, keys, Path(figures_dir) / FIGURE)
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


def mixture_decision_lines(summary: dict) -> list[str]:
    """The mixture verification's decisions judged on every task metric the runs scored (summary.json's
    `decision_accuracy_tasks`): a table per larger scale, or nothing without task scores."""
    rows = summary.get("decision_accuracy_tasks") or []
    if not rows:
        return []
    lines = ["", "Decision accuracy on the downstream tasks (the same mixtures ordered by each task metric at "
             "scale 0 and at the larger scale; 95% bootstrap interval over questions and seeds):", "",
             "| scale | task | metric | decision accuracy | interval | the chosen mixture wins |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['scale']} | {row['task']} | {row['metric']} | {row['accuracy']:.2f} | "
                     f"[{row['lo']:.2f}, {row['hi']:.2f}] | {'yes' if row['chosen_wins'] else 'no'} "
                     f"({row['chosen_wins_share']:.0%}) |")
    return lines
