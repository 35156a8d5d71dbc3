"""A corrupt MLflow store (its SQLite file overwritten) is said on every run of the workflow, one with nothing
to do included, with the exact command that repairs it; that command rebuilds the view from the files."""

import shlex
import shutil
import subprocess

import pytest

from faults_study import job_environment, mlflow_view, run, study_command
from tracking_checks import ISOFLOP

pytestmark = [pytest.mark.faults, pytest.mark.slow]


def test_a_corrupt_store_is_noticed_on_a_run_with_nothing_to_do_with_its_repair_command(faults_reference, tmp_path):
    config, reference = faults_reference
    workdir = tmp_path / "corrupt"
    shutil.copytree(reference, workdir, symlinks=True)
    store = workdir / "results" / "faults" / "mlflow.db"
    store.write_bytes(b"\x00garbage" * 1000)

    idle = run(study_command(workdir, config))
    assert idle.returncode == 0 and "Nothing to be done" in idle.stdout + idle.stderr
    [notice] = [line for line in idle.stderr.splitlines() if "is not a SQLite database" in line]
    assert notice.startswith(f"isoflop: MLflow store {store.resolve()} is not a SQLite database")
    command = notice.split("only that command repairs it (the workflow's sync leaves a corrupt store as it is): ")[1]
    assert command == f"isoflop track-sync --rebuild --config {config}"

    argv = shlex.split(command)
    repaired = subprocess.run([*ISOFLOP, *argv[1:]], cwd=workdir, capture_output=True, text=True,
                              env=job_environment(), timeout=600)
    assert repaired.returncode == 0, repaired.stderr[-3000:]
    assert mlflow_view(workdir) == mlflow_view(reference)
    again = run(study_command(workdir, config))
    assert again.returncode == 0 and "SQLite database" not in again.stderr
