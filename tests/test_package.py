"""The package is self-contained: a non-editable install validates a config and runs its CLI from outside the
checkout (the schemas ship as package data; nothing reaches into the repository)."""

import os
import shutil
import subprocess
import sys

from conftest import REPO


def test_an_installed_package_validates_the_default_config_and_runs_its_cli_outside_the_checkout(tmp_path):
    target, elsewhere, source = tmp_path / "site", tmp_path / "elsewhere", tmp_path / "source"
    elsewhere.mkdir()
    # built from a copy, so that the build leaves nothing in the checkout
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    shutil.copy(REPO / "pyproject.toml", source)
    # the project's dependencies come from this environment; the package itself is built and installed anew
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                              "--target", str(target), str(source)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-3000:]
    env = {**os.environ, "PYTHONPATH": str(target)}
    check = ("import isoflop, isoflop.config as c, sys; assert isoflop.__file__.startswith(sys.argv[1]), "
             "isoflop.__file__; config = c.load_config(sys.argv[2]); print(config['study'], c.SCHEMA_PATH)")
    done = subprocess.run([sys.executable, "-c", check, str(target), str(REPO / "config.yaml")], cwd=elsewhere,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    study, schema = done.stdout.split()
    assert study == "default" and schema.startswith(str(target))
    help_text = subprocess.run([sys.executable, str(target / "bin" / "isoflop"), "fit", "--help"], cwd=elsewhere,
                               env=env, capture_output=True, text=True, timeout=120)
    assert help_text.returncode == 0 and "--law" in help_text.stdout, help_text.stderr[-3000:]
