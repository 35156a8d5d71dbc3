"""A study whose run files were damaged after training (one result.json edited, one truncated): the workflow
names both files in one line, and its next run retrains exactly those two runs, ending with the untouched
study's tables and laws."""

import shutil

import pytest

from faults_study import assert_same_tables, run, study_command

pytestmark = [pytest.mark.faults, pytest.mark.slow]


def test_an_edited_and_a_truncated_result_are_named_and_exactly_their_runs_retrained(faults_reference, tmp_path):
    config, reference = faults_reference
    workdir = tmp_path / "damaged"
    shutil.copytree(reference, workdir, symlinks=True)
    out = workdir / "results" / "faults"
    edited, truncated, *others = sorted(out.glob("runs/*/result.json"))
    text = edited.read_text()
    loss = text.split('"val_loss": ')[1].split(",")[0]
    edited.write_text(text.replace(f'"val_loss": {loss},', '"val_loss": 1.0,'))
    truncated.write_text(truncated.read_text()[:1500])
    untouched = {path: path.stat().st_mtime_ns for path in others}

    failed = run(study_command(workdir, config))
    assert failed.returncode != 0
    [line] = [line for line in failed.stderr.splitlines() if "isoflop runs_table: error:" in line]
    assert str(edited.relative_to(workdir)) in line and str(truncated.relative_to(workdir)) in line
    assert "no longer match the hash" in line and "not readable JSON" in line
    assert "Traceback" not in failed.stderr + failed.stdout

    retrained = run(study_command(workdir, config))
    assert retrained.returncode == 0, retrained.stderr[-4000:]
    assert {path: path.stat().st_mtime_ns for path in others} == untouched  # only the two damaged runs trained
    assert edited.exists() and truncated.exists()
    assert_same_tables(workdir, reference)
