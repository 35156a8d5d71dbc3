"""Refusing nonsense: repeated points, copied rows, intervals that say nothing, empty CSVs, slow help."""

import subprocess
import sys

import numpy as np
import pytest

from isoflop.cli import main
from isoflop.errors import UserError
from isoflop.fit import fit_chinchilla, fit_law
from isoflop.fit.checks import fit_warnings
from test_fit_chinchilla import synthetic_study

TRUE = (1.8, 480.0, 2100.0, 0.35, 0.37)


def test_one_point_repeated_is_refused_not_given_zero_width_intervals():
    n, d, loss = np.full(50, 1e8), np.full(50, 2e9), np.full(50, 3.0)
    with pytest.raises(UserError, match="only 1 distinct points"):
        fit_chinchilla(n, d, loss, bootstrap=10)
    with pytest.raises(UserError, match="only 1 distinct points"):
        fit_law("overtrained", n, d, loss, objective="lsq")


def test_copied_rows_are_named_in_the_warnings():
    n, d, loss = synthetic_study(TRUE, noise=0.01, seed=1)
    fit = fit_chinchilla(np.r_[n, n[:3]], np.r_[d, d[:3]], np.r_[loss, loss[:3]])
    assert any(w.startswith("3 row(s) repeat another exactly") for w in fit["warnings"])
    assert fit_chinchilla(n, d, loss)["warnings"] == []


def test_uninformative_intervals_and_unsettled_exponents_are_warned():
    law = {"ci95": {"A": [10.0, 1e5], "alpha": [-0.1, 0.5], "E": None},
           "bootstrap": {"samples": {"alpha": [-0.1, 0.2, 0.3, 0.4, 0.5, -0.2, 0.1, 0.3, 0.2, 0.4]}}}
    warnings = fit_warnings(law, ("alpha",))
    assert any("interval of A spans 4.0 orders of magnitude" in w for w in warnings)
    assert any("exponent alpha is not positive in 20%" in w for w in warnings)
    quiet = {"ci95": {"A": [10.0, 900.0]}, "bootstrap": {"samples": {"alpha": [0.3] * 99 + [-0.1]}}}
    assert fit_warnings(quiet, ("alpha",)) == []


def test_few_noisy_points_give_warnings_from_a_real_fit():
    rng = np.random.default_rng(0)
    n = np.geomspace(1e7, 1e8, 7)
    d = 20 * n
    loss = (1.8 + 480 / n**0.35 + 2100 / d**0.37) * np.exp(rng.normal(0, 0.05, len(n)))
    fit = fit_chinchilla(n, d, loss, bootstrap=50)
    assert any("orders of magnitude" in w or "not positive" in w for w in fit["warnings"])


def test_header_only_csv_is_one_clear_line(tmp_path, capsys):
    path = tmp_path / "empty.csv"
    path.write_text("N,D,loss\n")
    assert main(["fit", str(path), "--law", "chinchilla", "--out", str(tmp_path / "x.json")]) == 1
    err = capsys.readouterr().err
    assert err == f"isoflop fit: error: {path}: no rows, only a header (N, D, loss)\n"


def test_fit_cli_loads_no_heavy_library_before_a_command_runs():
    code = ("import sys, isoflop.fit.cli; "
            "print(sorted(m for m in ('scipy', 'statsmodels', 'pandas', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("command", ["fit", "predict"])
def test_help_ends_with_examples(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    assert "examples:\n  isoflop " + command in out
