"""Figures only draw: every curve they show is evaluated in isoflop.fit, and one saver writes them all."""

import numpy as np
import pytest
from matplotlib import pyplot as plt

from isoflop.fit import fit_chinchilla, fit_isoflop, isoflop_allocation
from isoflop.fit.frontier import allocation_curves, compute_grid
from isoflop.fit.power import allocation_at
from isoflop.plots import DPI, save_figure
from test_fit_isoflop import isoflop_runs


def test_save_figure_writes_png_and_svg_at_one_resolution(tmp_path):
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1], [0, 1])
    path = save_figure(fig, tmp_path / "sub" / "line.png")
    assert path == tmp_path / "sub" / "line.png"
    assert plt.imread(path).shape[:2] == (2 * DPI, 3 * DPI)
    assert (tmp_path / "sub" / "line.svg").read_text().lstrip().startswith("<?xml")


@pytest.fixture(scope="module")
def laws():
    c, n, d, loss = isoflop_runs(noise=0.003, seed=2)
    return (fit_isoflop(c, n, d, loss, bootstrap=100, target_C=1e22),
            fit_chinchilla(n, d, loss, bootstrap=30, target_C=1e22))


def test_allocation_curves_agree_with_the_fits_own_numbers(laws):
    isoflop, chinchilla = laws
    compute = compute_grid([isoflop, chinchilla])
    assert compute[0] == pytest.approx(1e18 / 3) and compute[-1] == pytest.approx(1e22)
    iso = allocation_curves(isoflop, compute)
    at = isoflop_allocation(isoflop, compute[-1])
    assert iso["N_opt"][0][-1] == pytest.approx(at["N_opt"])
    assert iso["N_opt"][1][:, -1] == pytest.approx(at["ci95"]["N_opt"])
    chin = allocation_curves(chinchilla, compute)
    samples = np.column_stack([chinchilla["bootstrap"]["samples"][k] for k in ("E", "A", "B", "alpha", "beta")])
    params = np.array([chinchilla["params"][k] for k in ("E", "A", "B", "alpha", "beta")])
    at = allocation_at(params, samples, compute[-1])
    assert chin["D_opt"][0][-1] == pytest.approx(at["D_opt"])
    assert chin["D_opt"][1][:, -1] == pytest.approx(at["ci95"]["D_opt"])
    unbanded = allocation_curves({**isoflop, "bootstrap": {"samples": None}}, compute)
    assert unbanded["N_opt"][1] is None
