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


def big_table(rows: int, seed: int = 0):
    """`rows` distinct runs of TRUE with 1% log-normal noise, N and D log-uniform over 3 decades each."""
    rng = np.random.default_rng(seed)
    n = np.exp(rng.uniform(np.log(1e7), np.log(1e10), rows))
    d = np.exp(rng.uniform(np.log(1e9), np.log(1e12), rows))
    e, a, b, alpha, beta = TRUE
    return n, d, (e + a / n**alpha + b / d**beta) * np.exp(rng.normal(0, 0.01, rows))


@pytest.mark.slow
def test_large_tables_search_a_subsample_and_their_intervals_shrink_as_one_over_root_rows():
    from isoflop.fit.power import SUBSAMPLE_ROWS

    widths = {}
    for rows in (2_000, 20_000):
        fit = fit_chinchilla(*big_table(rows), bootstrap=100, seed=0)
        assert fit["search_rows"] == SUBSAMPLE_ROWS and fit["n_distinct_points"] == rows
        low, high = fit["ci95"]["alpha"]
        assert low < TRUE[3] < high  # the truth inside the rescaled (m-out-of-n) interval
        widths[rows] = high - low
        assert len(fit["residuals"]["values"]) <= 4096  # a large table keeps its residuals' quantiles
    assert 2.0 < widths[2_000] / widths[20_000] < 5.0  # sqrt(10) = 3.2


@pytest.mark.slow
def test_a_million_row_csv_fits_in_under_1_gb(tmp_path):
    """Peak memory of `isoflop fit` on 1e6 rows, measured as the child process's own VmHWM (its ru_maxrss
    would count the pytest worker's resident size at the fork: 1.1 GB once a worker had run other tests)."""
    import json

    import pandas as pd

    n, d, loss = big_table(1_000_000)
    pd.DataFrame({"N": n, "D": d, "loss": loss}).to_csv(tmp_path / "big.csv", index=False)
    child = ("import re, sys\nfrom isoflop.cli import main\ncode = main(sys.argv[1:])\n"
             "print(re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read()).group(1))\nsys.exit(code)")
    done = subprocess.run([sys.executable, "-c", child, "fit", str(tmp_path / "big.csv"), "--law", "chinchilla",
                           "--out", str(tmp_path / "law.json")], check=True, capture_output=True, text=True)
    peak_kib = int(done.stdout.split()[-1])
    assert peak_kib < 1024**2, f"peak RSS {peak_kib / 1024:.0f} MiB"
    law = json.loads((tmp_path / "law.json").read_text())
    assert law["n_points"] == 1_000_000 and law["params"]["alpha"] == pytest.approx(TRUE[3], abs=0.005)
