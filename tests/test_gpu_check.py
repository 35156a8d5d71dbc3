"""`make gpu-check` (scripts/checks/gpu_check.py): skips with a clear line and exit 0 where there is no CUDA device;
on a CUDA machine (marker `gpu`) the smoke study on the GPU matches the CPU run within its tolerance."""

import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import REPO

CHECK = [sys.executable, str(REPO / "scripts" / "checks" / "gpu_check.py")]


def test_without_a_gpu_it_skips_saying_so(tmp_path):
    out = tmp_path / "gpu_check.json"
    done = subprocess.run([*CHECK, "--out", str(out)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"gpu-check: SKIPPED: torch {torch.__version__} sees no CUDA device"
    assert json.loads(out.read_text())["verdict"] == "skipped"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_smoke_study_on_the_gpu_matches_the_cpu(tmp_path):
    out = tmp_path / "gpu_check.json"
    done = subprocess.run([*CHECK, "--out", str(out)], capture_output=True, text=True, timeout=1800)
    report = json.loads(out.read_text())
    assert done.returncode == 0 and report["verdict"] == "pass", done.stdout + done.stderr[-3000:]
    assert len(report["runs"]) == 9 and report["max_relative"] <= report["tolerance"]["per_run_relative"]
