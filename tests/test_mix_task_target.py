"""Task metrics as the mixture search's target: a run's value, the question matrix the decision accuracy
resamples, and the config's mistakes as one-line errors naming mix.search.target."""

import numpy as np
import pytest

from isoflop.config import validate_config
from isoflop.errors import UserError
from isoflop.mix.decide import decision_accuracy
from isoflop.mix.mixture import check_config
from isoflop.mix.search import target_loss
from isoflop.mix.task_target import question_matrix

ARC, PIQA = "arc_easy_rc_0shot", "piqa_rc_0shot"


def result(arc_bpb, piqa_bpb, arc_prob=(0.3, 0.5)):
    """A finished run's result with per-question scores: two ARC questions, four PIQA ones."""
    def scores(bpb, prob):
        return {"bpb": float(np.mean(bpb)), "correct_prob": float(np.mean(prob)), "acc": 0.5, "acc_len_norm": 0.5,
                "per_question": {"bpb": list(bpb), "correct_prob": list(prob), "acc": [1.0, 0.0] * (len(bpb) // 2),
                                 "acc_len_norm": [0.0, 1.0] * (len(bpb) // 2)}}
    return {"status": "ok", "val_loss_by_domain": {"code": 2.0}, "tasks": {
        ARC: scores(arc_bpb, arc_prob), PIQA: scores(piqa_bpb, (0.5, 0.5, 0.5, 0.5))}}


def test_a_task_target_is_the_metric_minimised_and_its_question_matrix_averages_to_it():
    run = result([1.0, 2.0], [3.0, 3.0, 4.0, 6.0])  # ARC bpb 1.5, PIQA bpb 4.0
    assert target_loss(run, "task:arc_easy:bpb") == 1.5
    assert target_loss(run, f"task:{PIQA}:bpb") == 4.0
    assert target_loss(run, "tasks:bpb") == pytest.approx(2.75)
    assert target_loss(run, {"task:arc_easy:bpb": 3, "task:piqa:bpb": 1}) == pytest.approx((3 * 1.5 + 4.0) / 4)
    assert target_loss(run, "task:arc_easy:correct_prob") == pytest.approx(1 - 0.4)  # higher is better: 1 - value
    assert target_loss({"status": "diverged", "tasks": None}, "tasks:bpb") is None
    runs = [run, result([2.0, 2.0], [1.0, 1.0, 1.0, 1.0])]
    for target in ("tasks:bpb", {"task:arc_easy:bpb": 3, "task:piqa:bpb": 1}, "task:arc_easy:correct_prob"):
        matrix = question_matrix(runs, target)
        assert matrix.shape == ((2, 6) if target != "task:arc_easy:correct_prob" else (2, 2))
        assert matrix.mean(axis=1) == pytest.approx([target_loss(r, target) for r in runs])
    # the second run is better on the mean task bpb (1.5 against 2.75): orders agree at both "scales"
    matrix = question_matrix(runs, "tasks:bpb")
    assert decision_accuracy(matrix, matrix, n_boot=0)["accuracy"] == 1.0


def test_a_task_target_is_checked_against_eval_tasks():
    def config(target, tasks=({"name": "arc_easy"}, {"name": "piqa"})):
        return validate_config({"study": "t", "eval": {"tasks": list(tasks)}, "mix": {"search": {"target": target}}})

    for target in ("tasks:bpb", "task:arc_easy:acc", "task:piqa_rc_0shot:correct_prob", {"task:piqa:bpb": 1}):
        check_config(config(target))
    for target, message in [
        ("task:hellaswag:bpb", "mix.search.target = 'task:hellaswag:bpb': 'hellaswag' names 0 of the tasks scored"),
        ("tasks:loss", "unknown task metric 'loss'; expected one of bpb, correct_prob, acc, acc_len_norm"),
        ({"task:piqa:bpb": 1, "code": 1}, "mix.search.target.code: a weighted target mixes task metrics with group"),
    ]:
        with pytest.raises(UserError, match=message.replace("(", r"\(").replace(".", r"\.")):
            check_config(config(target))
    with pytest.raises(UserError, match="a task target needs eval.tasks"):
        check_config(config("tasks:bpb", tasks=()))
