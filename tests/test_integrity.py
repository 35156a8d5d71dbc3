"""Run files that prove themselves (isoflop.integrity): a result.json edited, truncated or holding impossible
losses is named in one line, and one damaged after training is moved aside so that its run retrains."""

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from isoflop.errors import UserError
from isoflop.integrity import RejectedRunFile, check_result, read_results, write_result

VOCAB = 300  # ln 300 = 5.70 nats


def _trained(run_dir: Path, val_loss: float = 4.1385, domains=(4.0791, 4.2003)) -> Path:
    """A run folder as training leaves it: its curve, then its sealed result.json (losses token-weighted)."""
    run_dir.mkdir(parents=True)
    pd.DataFrame({"kind": ["eval"], "step": [20], "val_loss": [val_loss]}).to_parquet(run_dir / "curve.parquet")
    write_result(run_dir, {"status": "ok", "val_loss": val_loss, "steps": 20,
                           "val_loss_by_domain": dict(zip(("code", "prose"), domains))})
    return run_dir / "result.json"


def test_an_untouched_result_reads_back_with_its_values(tmp_path):
    path = _trained(tmp_path / "runs" / "a")
    assert check_result(path, VOCAB)["val_loss"] == 4.1385
    assert read_results([path], {"a": VOCAB})["a"]["val_loss_by_domain"]["prose"] == 4.2003


def test_an_edited_loss_is_named_in_one_line_and_its_run_moved_aside_to_retrain(tmp_path):
    edited, intact = _trained(tmp_path / "runs" / "edited"), _trained(tmp_path / "runs" / "intact")
    # the edit of the reliability probe: 4.1385 -> 1.0, the file still valid JSON with its old hash
    edited.write_text(edited.read_text().replace('"val_loss": 4.1385', '"val_loss": 1.0'))
    with pytest.raises(UserError) as raised:
        read_results([edited, intact], {"edited": VOCAB, "intact": VOCAB})
    message = str(raised.value)
    assert "\n" not in message and str(edited) in message and "no longer match the hash" in message
    assert "retrains exactly that run" in message and str(intact) not in message
    assert not edited.exists() and json.loads(edited.with_name("result.json.rejected").read_text())["val_loss"] == 1.0
    assert intact.exists()


def test_a_truncated_result_is_named_with_the_file_not_a_bare_decode_error(tmp_path):
    path = _trained(tmp_path / "runs" / "cut")
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    with pytest.raises(UserError, match=r"runs/cut/result.json \(not readable JSON \(JSONDecodeError") as raised:
        read_results([path])
    assert "\n" not in str(raised.value) and not path.exists()


def test_a_replaced_curve_rejects_its_run(tmp_path):
    path = _trained(tmp_path / "runs" / "curve")
    pd.DataFrame({"kind": ["eval"], "step": [20], "val_loss": [1.0]}).to_parquet(path.parent / "curve.parquet")
    with pytest.raises(RejectedRunFile, match="curve.parquet is missing or no longer the one training wrote"):
        check_result(path, VOCAB)


@pytest.mark.parametrize("val_loss,domains,why", [
    (1.0, (4.0791, 4.2003), "not a mean of its per-domain losses"),  # the probe's edit, in a file without hashes
    (-0.5, (-0.5, -0.5), "val_loss = -0.5 is outside [0, ln 300 + 1]"),
    (math.log(VOCAB) + 1.5, (7.2, 7.2), "is outside [0, ln 300 + 1]"),
])
def test_impossible_losses_in_a_file_without_hashes_are_refused_naming_the_run(tmp_path, val_loss, domains, why):
    path = tmp_path / "runs" / "legacy" / "result.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"status": "ok", "val_loss": val_loss,
                                "val_loss_by_domain": dict(zip(("code", "prose"), domains))}))
    with pytest.raises(UserError, match="runs/legacy/result.json") as raised:
        read_results([path], {"legacy": VOCAB})
    assert why in str(raised.value) and not path.exists()  # written before hashes: retrained like a damaged one


def test_impossible_losses_that_training_wrote_are_refused_in_place(tmp_path):
    path = _trained(tmp_path / "runs" / "bug", val_loss=9.0, domains=(9.0, 9.0))
    with pytest.raises(UserError, match="a training bug: report it") as raised:
        read_results([path], {"bug": VOCAB})
    assert "runs/bug/result.json" in str(raised.value) and path.exists()  # retraining would write it again


def test_a_diverged_run_carries_no_losses_and_passes(tmp_path):
    run_dir = tmp_path / "runs" / "diverged"
    run_dir.mkdir(parents=True)
    write_result(run_dir, {"status": "diverged", "val_loss": None, "val_loss_by_domain": None})
    assert check_result(run_dir / "result.json", VOCAB)["status"] == "diverged"
