"""The code's own rules, checked in CI: parsing the workflow never imports torch; ruff, mypy and the import
contracts (pyproject.toml) pass, and the contracts catch a planted violation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# Snakemake run in-process under an import probe that records who first imported torch
TORCH_PROBE = """
import atexit, sys, traceback
first = []
class Probe:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and not first:
            first.append("".join(traceback.format_stack(limit=30)))
        return None
sys.meta_path.insert(0, Probe())
atexit.register(lambda: print("torch imported by:\\n" + first[0] if first else "torch not imported", file=sys.stderr))
from snakemake.cli import main
sys.argv = ["snakemake", *sys.argv[1:]]
main()
"""


def _env() -> dict:
    return {**os.environ, "ISOFLOP_PROGRESS": "0",
            "PYTHONPATH": os.pathsep.join([str(REPO / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])}


def test_parsing_the_workflow_never_imports_torch(tmp_path):
    """A dry run plans every run (sizes, parameter counts, FLOPs) from `train/shapes.py` alone."""
    done = subprocess.run([sys.executable, "-c", TORCH_PROBE, "--profile", "workflow/profiles/local",
                           "--configfile", "tests/smoke.yaml", "--directory", str(tmp_path), "--dry-run"],
                          cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "train_trunk" in done.stdout + done.stderr  # the plan was made: its runs are jobs
    assert done.stderr.rstrip().endswith("torch not imported"), done.stderr[-3000:]
