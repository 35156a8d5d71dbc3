"""`isoflop study` (what `make study` runs) shows one line per finished job with done/total and the elapsed time,
a progress bar only on a terminal, passes errors on unchanged, and leaves Snakemake's complete log in
`.snakemake/log/`."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from isoflop.launch import StudyProgress

REPO = Path(__file__).resolve().parents[1]
FINISHED_LINE = re.compile(r"isoflop: \[(\d+)/(\d+)\] \d+:\d\d:\d\d (\S+)")


@pytest.fixture(scope="module")
def corpus_only(tmp_path_factory):
    """The smoke study run through `isoflop study` up to its first job (the corpus), output captured (no tty)."""
    workdir = tmp_path_factory.mktemp("progress")
    env = {**os.environ, "ISOFLOP_PROGRESS": "0",
           "PYTHONPATH": os.pathsep.join([str(REPO / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])}
    done = subprocess.run([sys.executable, "-m", "isoflop.cli", "study", "--config", "tests/smoke.yaml",
                           "--cores", "1", "--directory", str(workdir), "--until", "corpus"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done, workdir


def test_one_plain_line_per_finished_job_and_the_complete_log_kept(corpus_only):
    done, workdir = corpus_only
    lines = done.stderr.splitlines()
    assert "\r" not in done.stderr and "\x1b" not in done.stderr  # not a terminal: plain lines
    finished = [FINISHED_LINE.fullmatch(line) for line in lines if line.startswith("isoflop: [")]
    assert len(finished) == 1 and finished[0].group(1) == "1" and finished[0].group(3) == "corpus"
    assert int(finished[0].group(2)) > 1  # the study's whole DAG, of which --until ran the first job
    assert not any("reason:" in line or "jobid:" in line or "output:" in line for line in lines), lines
    closing = lines[-1]
    assert closing.startswith(f"isoflop: study done: 1/{finished[0].group(2)} jobs in ")
    log = Path(closing.split("Snakemake's complete log: ", 1)[1])
    assert log.parent == (workdir / ".snakemake" / "log").resolve() and log.is_file()
    full = log.read_text()  # everything the terminal was spared is in the log
    assert "localrule corpus:" in full and "reason: Missing output files" in full and "1 of " in full
    assert len(done.stderr) < len(full) / 3


def test_on_a_terminal_a_bar_is_drawn_below_the_lines(corpus_only):
    _, workdir = corpus_only
    transcript = next((workdir / ".snakemake" / "log").glob("*.snakemake.log")).read_text()
    screen = io.StringIO()
    progress = StudyProgress(screen, tty=True, tick_seconds=3600)
    for line in transcript.splitlines(keepends=True):
        progress.feed(line)
    progress.finish(0)
    shown = screen.getvalue()
    total = re.search(r"1 of (\d+) steps", transcript).group(1)
    assert re.search(rf"isoflop: \[1/{total}\] \d+:\d\d:\d\d corpus\n\[#?\.+\] 1/{total} jobs \d+:\d\d:\d\d", shown)
    assert shown.count("\r\x1b[K") >= 1  # the bar is cleared before the closing line is written
    assert shown.endswith(f"isoflop: study done: 1/{total} jobs in {shown.rsplit(' jobs in ', 1)[1]}")


def test_errors_and_unknown_lines_pass_unchanged():
    """An error block in Snakemake 9's format, a job's own one-line failure and a warning all reach the user."""
    transcript = """Assuming unrestricted shared filesystem usage.

SNAKEMAKE
=========
  Date: 2026-12-07 16:43:49
  Host: vm

Building DAG of jobs...
WorkflowWarning in file /work/Snakefile, line 3:
  a warning's indented detail
[Mon Dec  7 16:43:52 2026]
rule train:
    input: results/smoke/plan.json
    output: results/smoke/runs/abc/result.json
    jobid: 12
    reason: Missing output files: results/smoke/runs/abc/result.json
    wildcards: run_id=abc
    resources: tmpdir=/tmp
isoflop train/abc: error: config key 'train.lr' is not finite
[Mon Dec  7 16:43:59 2026]
Error in rule train:
    message: None
    jobid: 12
    log: results/smoke/logs/train/abc.log (check log file(s) for error details)
Shutting down, this might take some time.
Exiting because a job execution failed. Look below for error messages
"""
    screen = io.StringIO()
    progress = StudyProgress(screen, tty=False)
    for line in transcript.splitlines(keepends=True):
        progress.feed(line)
    progress.finish(1)
    assert screen.getvalue().splitlines() == [
        "WorkflowWarning in file /work/Snakefile, line 3:",
        "  a warning's indented detail",
        "isoflop train/abc: error: config key 'train.lr' is not finite",
        "Error in rule train:",
        "    message: None",
        "    jobid: 12",
        "    log: results/smoke/logs/train/abc.log (check log file(s) for error details)",
        "Shutting down, this might take some time.",
        "Exiting because a job execution failed. Look below for error messages",
        f"isoflop: study stopped (exit status 1): 0/0 jobs in {screen.getvalue().rsplit(' jobs in ', 1)[1].strip()}",
    ]
