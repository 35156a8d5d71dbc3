"""A clone without ../shared: the tests that read published reference data skip, saying which file is missing."""

import os
import subprocess
import sys

from conftest import REPO


def test_tests_needing_the_shared_folder_skip_with_a_reason_when_it_is_absent(tmp_path):
    missing = tmp_path / "no-shared-here"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:xdist", "-p", "no:cacheprovider", "-rs", "-q",
         str(REPO / "tests" / "test_fit_chinchilla.py")],
        capture_output=True, text=True, timeout=300, cwd=REPO, env={**os.environ, "ISOFLOP_SHARED": str(missing)},
    )
    assert done.returncode == 0, done.stdout[-3000:]
    reason = f"reference data {missing}/reference/chinchilla/svg_extracted_data.csv not found"
    skipped = [line for line in done.stdout.splitlines() if line.startswith("SKIPPED") and reason in line]
    assert skipped, done.stdout[-3000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert " skipped" in summary and "failed" not in summary and "error" not in summary, summary
