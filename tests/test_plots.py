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


def test_law_figures_draw_every_approach_and_the_projection(tmp_path):
    from isoflop.fit import fit_study
    from isoflop.plots.laws import plot_envelope, plot_frontier, plot_tokens_per_param
    from test_fit_envelope_study import ladder_study

    laws = fit_study(ladder_study(), bootstrap=30, seed=0)
    options = {"envelope_fit": laws["envelope"], "next_budget": laws["next_budget"],
               "convention": "nonembed_head_attention"}
    plot_frontier(laws["isoflop"], laws["chinchilla"], tmp_path / "frontier.png", **options)
    plot_tokens_per_param(laws["isoflop"], laws["chinchilla"], tmp_path / "tokens.png", **options)
    plot_envelope(laws["envelope"], tmp_path / "envelope.png", convention="nonembed_head_attention")
    shapes = {name: plt.imread(tmp_path / f"{name}.png").shape[:2] for name in ("frontier", "tokens", "envelope")}
    assert shapes == {"frontier": (540, 1320), "tokens": (540, 840), "envelope": (540, 1320)}
    svg = (tmp_path / "frontier.svg").read_text()
    # the axes name the convention, the title the projection with its interval, the legend every approach
    assert "6ND + attention FLOPs" in svg and "non-embedding + head parameters" in svg
    for label in ("approach 1 (envelope)", "approach 2 (IsoFLOP)", "approach 3 (Chinchilla fit)"):
        assert label in svg
    low, high = laws["next_budget"]["ci95"]["N_opt"]
    assert f"N* = {laws['next_budget']['N_opt']:.2g} [{low:.2g}, {high:.2g}]" in svg
    a, (a_low, a_high) = laws["envelope"]["params"]["a"], laws["envelope"]["ci95"]["a"]
    assert f"N* ∝ C^{a:.2f} [{a_low:.2f}, {a_high:.2f}]" in (tmp_path / "envelope.svg").read_text()


def test_loss_curves_are_a_grid_of_panels(tmp_path):
    import pandas as pd

    from isoflop.plots.curves import plot_loss_curves

    runs = pd.DataFrame([{"run_id": f"{b}-{n}", "budget": b, "N": n, "D": b / (6 * n), "val_loss": 3.0,
                          "status": "ok"} for b in (1e12, 2e12, 4e12, 8e12, 16e12) for n in (1e4, 2e4)])
    curves = {run_id: pd.DataFrame({"tokens": np.arange(1, 101) * 100.0, "train_loss": np.linspace(5, 3, 100)})
              for run_id in runs["run_id"]}
    plot_loss_curves(runs, curves, tmp_path / "curves.png")
    height, width = plt.imread(tmp_path / "curves.png").shape[:2]
    assert (height, width) == (2 * 3.4 * DPI, 3 * 3.9 * DPI)  # five budgets: two rows of three, not one row of five


def test_cluster_map_counts_the_documents_it_draws_in_colour_blind_safe_colours(tmp_path):
    from isoflop.curate.figures import OKABE_ITO, plot_cluster_map

    ids = np.repeat(np.arange(10), np.arange(1, 11))  # cluster k has k + 1 documents
    xy = np.random.default_rng(0).normal(size=(len(ids), 2))
    plot_cluster_map(xy, ids, tmp_path / "map.png", labels={0: "alpha"})
    svg = (tmp_path / "map.svg").read_text()
    assert "0 (1): alpha" in svg and "9 (10)" in svg and "55 documents, 10 clusters" in svg
    assert OKABE_ITO[4].lower() in svg.lower()
