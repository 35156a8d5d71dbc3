"""Task metrics of a language model on ranked-classification questions, as the OLMo ladder computes them.

Each answer choice is scored by the summed log-probability of its tokens (the continuation) after the question's
context. Per question, then averaged over questions (OLMo's in-loop `ICLMetric`, its OLMES "v2" variants that
count the continuation's leading space):

- `bpb`: bits per byte of the correct continuation, -log p(correct) / (its UTF-8 bytes) / ln 2 (task loss);
- `correct_prob`: the probability of the correct choice normalised over the choices, softmax of the summed
  log-probabilities (CORRECT-PROB; DataDecide's continuous metric);
- `acc`: whether the correct choice has the highest summed log-probability;
- `acc_len_norm`: the same with each choice's log-probability divided by its length in characters.

The context and each continuation are tokenised separately; the model reads `context + continuation[:-1]`,
truncated from the left to its `seq_len` when longer (counted in `n_truncated`), and the continuation's tokens are
scored at the last positions, as OLMo does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from isoflop.errors import UserError
from isoflop.tasks.olmes import Question
from isoflop.tasks.results import METRICS



def requests_of(questions: Sequence[Question], encode: Callable[[str], list[int]], seq_len: int,
                start_id: int | None = None) -> tuple[list[Question], list[dict]]:
    """The questions that can be scored and one request per (question, choice): the token window the model reads,
    where the continuation's tokens start in it, and whether the window was cut on the left. A question with an
    answer longer than `seq_len` tokens cannot be scored at all and is left out (callers count it). `start_id`,
    when given, opens every context (isoflop's token streams put an EOS before each document)."""
    kept, requests = [], []
    for question in questions:
        context = ([start_id] if start_id is not None else []) + list(encode(question.context))
        continuations = [list(encode(choice)) for choice in question.continuations]
        if not context:
            raise UserError(f"question {question.doc_id} has an empty context: nothing predicts its answer's first token")
        if not all(1 <= len(continuation) <= seq_len for continuation in continuations):
            continue
        kept.append(question)
        for continuation in continuations:
            full = context + continuation[:-1]
            window = full[-seq_len:]
            requests.append({"window": window, "continuation": continuation,
                             "start": len(window) - len(continuation), "truncated": len(full) > seq_len})
    return kept, requests


def loglikelihoods(model, requests: list[dict], *, batch_size: int = 16, device: str = "cpu") -> np.ndarray:
    """The summed log-probability of each request's continuation: (n_requests,) float64.

    Windows are right-padded into batches; a causal model's logits at a position never see the padding after it.
    """
    import torch

    scores = np.empty(len(requests))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for begin in range(0, len(requests), batch_size):
                batch = requests[begin:begin + batch_size]
                width = max(len(r["window"]) for r in batch)
                ids = torch.zeros((len(batch), width), dtype=torch.long)
                for row, request in enumerate(batch):
                    ids[row, :len(request["window"])] = torch.tensor(request["window"])
                log_probs = torch.log_softmax(model(ids.to(device)).float(), dim=-1).cpu()
                for row, request in enumerate(batch):
                    positions = request["start"] + torch.arange(len(request["continuation"]))
                    tokens = torch.tensor(request["continuation"])
                    scores[begin + row] = float(log_probs[row, positions, tokens].double().sum())
    finally:
        model.train(was_training)
    return scores


def question_metrics(questions: Sequence[Question], scores: np.ndarray) -> dict[str, list[float]]:
    """`METRICS` per question from the summed log-probabilities `scores` of every choice, in the order
    `requests_of` builds them (the mixture search resamples questions to put an interval on a decision)."""
    values: dict[str, list[float]] = {name: [] for name in METRICS}
    offset = 0
    for question in questions:
        choice_scores = np.asarray(scores[offset:offset + len(question.continuations)], dtype=float)
        offset += len(question.continuations)
        label = question.label
        correct = question.continuations[label]
        values["bpb"].append(float(-choice_scores[label] / len(correct.encode("utf-8")) / math.log(2)))
        shifted = np.exp(choice_scores - choice_scores.max())
        values["correct_prob"].append(float(shifted[label] / shifted.sum()))
        values["acc"].append(float(np.argmax(choice_scores) == label))
        lengths = np.array([len(choice) for choice in question.continuations], dtype=float)
        values["acc_len_norm"].append(float(np.argmax(choice_scores / lengths) == label))
    return values


def evaluate_questions(model, encode: Callable[[str], list[int]], questions: Sequence[Question], seq_len: int, *,
                       start_id: int | None = None, batch_size: int = 16, device: str = "cpu") -> dict:
    """`METRICS` of `model` on `questions`, with how many questions were scored and skipped (an answer longer than
    `seq_len`) and how many requests were truncated on the left, and `per_question`: each metric of every scored
    question; metrics are None when none could be scored."""
    kept, requests = requests_of(questions, encode, seq_len, start_id)
    counts = {"n_questions": len(kept), "n_skipped": len(questions) - len(kept), "n_requests": len(requests),
              "n_truncated": sum(r["truncated"] for r in requests)}
    if not kept:
        return {**dict.fromkeys(METRICS), **counts, "per_question": {name: [] for name in METRICS}}
    scores = loglikelihoods(model, requests, batch_size=batch_size, device=device)
    per_question = question_metrics(kept, scores)
    return {**{name: sum(values) / len(kept) for name, values in per_question.items()}, **counts,
            "per_question": per_question}
