"""`isoflop.workflow.logged`: a rule's log holds its output between a start line and an end line, no bars."""

import re
import sys

import pytest

from isoflop.errors import UserError
from isoflop.workflow import logged, progress_enabled


def test_a_log_names_its_stage_as_it_starts_and_ends(tmp_path, monkeypatch):
    monkeypatch.setenv("ISOFLOP_PROGRESS", "1")
    log = tmp_path / "results" / "s" / "logs" / "train" / "abc123.log"
    with logged(log):
        print("hello")
        bars = progress_enabled()
    assert not bars  # stderr is the log file, not a terminal
    lines = log.read_text().splitlines()
    assert lines[0].endswith("INFO isoflop.workflow: train/abc123: started") and lines[1] == "hello"
    assert re.fullmatch(r".* INFO isoflop\.workflow: train/abc123: done in \d+\.\d s", lines[2]) and len(lines) == 3


def test_a_failure_leaves_its_traceback_in_the_log_and_one_line_on_stderr(tmp_path, capsys):
    log = tmp_path / "logs" / "fit.log"
    with pytest.raises(SystemExit) as exit_, logged(log):
        raise ValueError("bad value")
    assert exit_.value.code == 1
    text = log.read_text()
    assert "Traceback" in text and "ValueError: bad value" in text
    assert re.search(r"ERROR isoflop\.workflow: fit: failed after \d+\.\d s\n$", text)
    assert capsys.readouterr().err == f"isoflop fit: error: ValueError: bad value (traceback in {log})\n"


def test_a_user_error_is_its_message_alone(tmp_path, capsys):
    log = tmp_path / "logs" / "train" / "abc123def456.log"
    with pytest.raises(SystemExit) as exit_, logged(log):
        raise UserError("config key 'train.lr': too high")
    assert exit_.value.code == 1
    assert capsys.readouterr().err == f"isoflop train/abc123def456: error: config key 'train.lr': too high (log: {log})\n"
    assert "Traceback" in log.read_text()  # the log keeps the whole story


def test_bars_only_on_a_terminal(monkeypatch):
    class Terminal:
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    monkeypatch.setenv("ISOFLOP_PROGRESS", "1")
    assert progress_enabled()
    monkeypatch.setenv("ISOFLOP_PROGRESS", "0")
    assert not progress_enabled()


def test_a_trunk_that_fills_the_disk_says_so_naming_the_study_folder(tmp_path, capsys):
    """torch.save onto a full device (/dev/full: every write fails with ENOSPC), as a trunk's checkpoint on a
    full disk: its zip writer reports `[enforce fail at inline_container.cc:...]`, which the line translates."""
    import torch

    log = tmp_path / "results" / "s" / "logs" / "trunks" / "t1.log"
    with pytest.raises(SystemExit) as exit_, logged(log):
        torch.save({"weights": torch.zeros(100_000)}, "/dev/full")
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith(f"isoflop trunks/t1: error: No space left on device under {tmp_path / 'results' / 's'} "
                          "(RuntimeError: [enforce fail at inline_container.cc:")
    assert err.endswith(f"free space there and run the workflow again; it redoes what did not finish (log: {log})\n")
    assert "Traceback" in log.read_text() and err.count("\n") == 1


def test_a_full_disk_in_any_write_says_so(tmp_path, capsys):
    log = tmp_path / "results" / "s" / "logs" / "tokenize.log"
    with pytest.raises(SystemExit), logged(log), open("/dev/full", "wb") as handle:
        handle.write(b"tokens" * 100_000)
    assert capsys.readouterr().err.startswith(
        f"isoflop tokenize: error: No space left on device under {tmp_path / 'results' / 's'} (OSError: [Errno 28]")
