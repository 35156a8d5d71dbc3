"""A finished run's downstream-task evaluation (called by the training loop at a run's end)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from isoflop.errors import UserError
from isoflop.tasks.results import task_key


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
