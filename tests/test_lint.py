"""The code's own rules, checked in CI: parsing the workflow never imports torch; ruff, mypy and the import
contracts (pyproject.toml) pass, and the contracts catch a planted violation."""

from __future__ import annotations

import os
import re
import shutil
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


def _run(*command: str, cwd: Path = REPO, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(command), cwd=cwd, env=env or _env(), capture_output=True, text=True, timeout=300)


def test_ruff_passes():
    done = _run(str(BIN / "ruff"), "check", "--no-cache", ".")
    assert done.returncode == 0, done.stdout[-4000:]


def test_mypy_passes_on_src(tmp_path):
    done = _run(str(BIN / "mypy"), "--cache-dir", str(tmp_path / "cache"))
    assert done.returncode == 0, done.stdout[-4000:]
    assert "no issues found in" in done.stdout


def test_the_import_contracts_hold_and_catch_a_planted_violation(tmp_path):
    done = _run(str(BIN / "lint-imports"), "--no-cache")
    assert done.returncode == 0, done.stdout[-4000:]
    assert "Contracts: 6 kept, 0 broken." in done.stdout

    # a copy of the package in which a law module imports the training loop, and the plan imports Snakemake
    copy = tmp_path / "repo"
    shutil.copytree(REPO / "src", copy / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", copy)
    laws = copy / "src/isoflop/fit/laws.py"
    laws.write_text(laws.read_text() + "\n\ndef _planted():\n    from isoflop.train.loop import train_run\n\n"
                    "    return train_run\n")
    plan = copy / "src/isoflop/plan.py"
    plan.write_text(plan.read_text() + "\n\ndef _planted():\n    import snakemake\n\n    return snakemake\n")
    done = _run(str(BIN / "lint-imports"), "--no-cache", cwd=copy, env={**_env(), "PYTHONPATH": str(copy / "src")})
    assert done.returncode == 1, done.stdout[-4000:]
    assert "Contracts: 3 kept, 3 broken." in done.stdout, done.stdout[-4000:]
    for broken in ("the library never imports Snakemake", "fit and plots never import train",
                   "the import layers"):
        assert re.search(rf"{broken}[^\n]*\n?[^\n]* BROKEN", done.stdout), (broken, done.stdout[-4000:])
    assert "isoflop.fit.laws -> isoflop.train.loop" in done.stdout
    assert "isoflop.plan -> snakemake" in done.stdout
