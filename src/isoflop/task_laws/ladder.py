"""Runs of a model ladder, as the task laws see them: per run its N, final D, and per task a series of
(task bpb, accuracy) over its evaluated checkpoints.

Two sources. A ladder description (the format of allenai/OLMo-ladder's configs: per model size `n`, `mode`
train/eval and `paths` of CSVs with one row per evaluated checkpoint), whose task columns follow the OLMo
ladder's own definitions (`LADDER_TASKS`); or a study's runs table, one row per run, whose columns
`task_<name>_bpb` and `task_<name>_acc` hold each task's final values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from isoflop.errors import UserError
from isoflop.workflow import read_user_json


@dataclass(frozen=True)
class LadderTask:
    """One task as the OLMo ladder forms it: a weighted average of its parts' columns (MMLU averages its
    four subject groups), accuracy `metric` len_norm or acc, and `chance` (the accuracy of guessing, which
    only seeds the sigmoid fit)."""

    parts: tuple[tuple[str, float], ...]
    metric: str = "len_norm"
    chance: float = 0.25

    def bpb_columns(self) -> list[str]:
        return [f"eval/downstream_bpb/{part}_rc_5shot_bpb" for part, _ in self.parts]

    def accuracy_columns(self) -> list[str]:
        return [f"eval/downstream/{part}_rc_5shot_{self.metric}" for part, _ in self.parts]

    def weights(self) -> np.ndarray:
        return np.array([weight for _, weight in self.parts])


# The published paper's eight tasks ("v2_main" in allenai/OLMo-ladder src/scaling/task_utils.py): MMLU is the
# average of its four test subject groups weighted by their share of MMLU's questions; every other task is one
# split's ranked-classification (rc) 5-shot columns. Accuracy is length-normalised (len_norm) except BoolQ.
_MMLU_WEIGHTS = {"stem": 0.215, "humanities": 0.335, "social_sciences": 0.219, "other": 0.231}
_CHANCE = {"piqa_val": 0.5, "socialiqa_val": 1 / 3, "csqa_val": 0.2, "boolq_val": 0.5, "winogrande_val": 0.5}
LADDER_TASKS: dict[str, LadderTask] = {
    "mmlu_avg_test_5shot": LadderTask(tuple((f"mmlu_{group}_test", w) for group, w in _MMLU_WEIGHTS.items())),
    **{f"{split}_5shot": LadderTask(((split, 1.0),), chance=_CHANCE.get(split, 0.25))
       for split in ("hellaswag_val", "arc_challenge_test", "arc_easy_test", "piqa_val", "csqa_val",
                     "socialiqa_val", "openbookqa_test")},
}


@dataclass
class Run:
    """One run: its size `N`, final tokens `D`, the tokens at each evaluated checkpoint, and per task the
    (bpb, accuracy) arrays over those checkpoints."""

    name: str
    N: float
    D: float
    tokens: np.ndarray
    bpb: dict[str, np.ndarray] = field(default_factory=dict)
    accuracy: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Ladder:
    """The runs the laws are fitted on (`train`) and the held-out targets (`targets`, mode eval)."""

    train: list[Run]
    targets: list[Run]
    tasks: list[str]
    chance: dict[str, float]
    source: str


def read_ladder(path: str | Path, tasks: list[str] | None = None) -> Ladder:
    """A ladder description (JSON) and the run CSVs it names (relative to the JSON's folder)."""
    import pandas as pd

    path = Path(path)
    description = read_user_json(path, "ladder file")
    chosen = list(LADDER_TASKS) if tasks is None else tasks
    unknown = [task for task in chosen if task not in LADDER_TASKS]
    if unknown:
        raise UserError(f"unknown ladder task(s) {', '.join(unknown)}; known: {', '.join(LADDER_TASKS)}")
    train, targets = [], []
    for size, entry in description.items():
        for key in ("n", "mode", "paths"):
            if key not in entry:
                raise UserError(f"{path}: size {size!r} lacks key {key!r}")
        if entry["mode"] not in ("train", "eval"):
            raise UserError(f"{path}: size {size!r} has mode {entry['mode']!r}; expected train or eval")
        for csv in entry["paths"]:
            csv_path = path.parent / csv
            try:
                table = pd.read_csv(csv_path)
            except FileNotFoundError:
                raise UserError(f"{path}: run file {csv_path} not found") from None
            run = _run_from_checkpoints(Path(csv).stem, float(entry["n"]), table, chosen, csv_path)
            (train if entry["mode"] == "train" else targets).append(run)
    if not train:
        raise UserError(f"{path}: no size has mode 'train'")
    return Ladder(train, targets, chosen, {task: LADDER_TASKS[task].chance for task in chosen}, str(path))


def _run_from_checkpoints(name: str, n: float, table, tasks: list[str], source: Path) -> Run:
    if "throughput/total_tokens" in table:
        tokens = table["throughput/total_tokens"].to_numpy(dtype=float)
    elif {"_step", "batch_size_in_tokens"} <= set(table.columns):
        tokens = table["_step"].to_numpy(dtype=float) * table["batch_size_in_tokens"].to_numpy(dtype=float)
    else:
        raise UserError(f"{source}: needs column 'throughput/total_tokens' or '_step' and 'batch_size_in_tokens'")
    run = Run(name, n, float(tokens[-1]), tokens)
    for task in tasks:
        spec = LADDER_TASKS[task]
        run.bpb[task] = _weighted(table, spec.bpb_columns(), spec.weights(), source)
        run.accuracy[task] = _weighted(table, spec.accuracy_columns(), spec.weights(), source)
    return run


def _weighted(table, columns: list[str], weights: np.ndarray, source: Path) -> np.ndarray:
    missing = [column for column in columns if column not in table]
    if missing:
        raise UserError(f"{source}: missing column {missing[0]!r}")
    values = table[columns].to_numpy(dtype=float)
    return values @ weights / weights.sum()


def task_column(task: str, metric: str) -> str:
    """The runs table's column for `task`'s `metric` (bpb or acc)."""
    return f"task_{task}_{metric}"


def read_runs_table(path: str | Path, tasks: list[str] | None = None) -> Ladder:
    """A study's runs table (parquet): its finished runs, each one checkpoint (its final evaluation)."""
    import pandas as pd
    import pyarrow as pa

    from isoflop.fit.study import finished

    path = Path(path)
    try:
        table = pd.read_parquet(path)
    except FileNotFoundError:
        raise UserError(f"runs table {path} not found") from None
    except (pa.ArrowException, OSError) as err:
        raise UserError(f"runs table {path} is not a parquet file ({err})") from None
    found = sorted(column[len("task_"):-len("_bpb")] for column in table.columns
                   if column.startswith("task_") and column.endswith("_bpb")
                   and task_column(column[len("task_"):-len("_bpb")], "acc") in table.columns)
    chosen = found if tasks is None else tasks
    missing = [task for task in chosen if task not in found]
    if missing or not chosen:
        raise UserError(f"{path}: no columns {task_column(missing[0] if missing else '<task>', 'bpb')} and "
                        f"{task_column(missing[0] if missing else '<task>', 'acc')} (tasks found: "
                        f"{', '.join(found) or 'none'})")
    for column in ("N", "D"):
        if column not in table:
            raise UserError(f"{path}: missing column {column!r}")
    ok = finished(table, task_column(chosen[0], "bpb"))
    runs = [Run(str(row.get("run_id", i)), float(row["N"]), float(row["D"]), np.array([float(row["D"])]),
                {task: np.array([float(row[task_column(task, "bpb")])]) for task in chosen},
                {task: np.array([float(row[task_column(task, "acc")])]) for task in chosen})
            for i, (_, row) in enumerate(ok.iterrows())]
    # a study's table records each task's chance accuracy (see isoflop.tasks.results); it only seeds the sigmoid
    chance = {task: float(ok[task_column(task, "chance")].mean()) if task_column(task, "chance") in ok else 0.25
              for task in chosen}
    return Ladder(runs, [], chosen, chance, str(path))
