"""Figures of fitted scaling laws: each a pure function of tables and fit dicts to a PNG file."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from isoflop.fit.frontier import allocation_curves, budget_profile, compute_grid, loss_curve
from isoflop.fit.predict import predict
from isoflop.plots import save_figure

BAND_ALPHA = 0.2


def plot_isoflop_curves(runs: pd.DataFrame, isoflop_fit: dict, path, *, loss_col: str | None = None) -> None:
    """Loss against N per budget, with each budget's parabola and vertex; edge minima hollow.

    `runs` needs N, C and the loss (`loss_col`, else "loss", else "val_loss"); a run belongs to the
    budget the fit grouped it under (its `budget` column), or without one to the fitted budget nearest its C.
    """
    loss_col = _loss_column(runs, loss_col)
    budgets = isoflop_fit["budgets"]
    if "budget" in runs and all(b.get("budget") is not None for b in budgets):
        groups = [runs["budget"].to_numpy() == b["budget"] for b in budgets]
    else:
        budget_c = np.array([b["C"] for b in budgets])
        nearest = np.abs(np.log(runs["C"].to_numpy())[:, None] - np.log(budget_c)[None]).argmin(axis=1)
        groups = [nearest == index for index in range(len(budgets))]
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(budgets)))
    fig, ax = plt.subplots(figsize=(7, 5))
    for group, budget, colour in zip(groups, budgets, colours):
        members = runs[group]
        ax.scatter(members["N"], members[loss_col], color=colour, s=18, label=f"C = {budget['C']:.2g}")
        grid = np.geomspace(members["N"].min(), members["N"].max(), 100)
        ax.plot(grid, budget_profile(budget, grid), color=colour, lw=1)
        edge = budget["minimum_at_edge"]
        ax.scatter([budget["N_opt"]], [budget["loss_opt"]], marker="*", s=140, edgecolor=colour,
                   facecolor="none" if edge else colour, zorder=3)
    ax.scatter([], [], marker="*", s=140, facecolor="none", edgecolor="grey", label="minimum at edge (unused)")
    ax.set_xscale("log")
    ax.set(xlabel="parameters N", ylabel="loss (nats/token)",
           title=f"IsoFLOP profiles: N* ∝ C^{isoflop_fit['params']['a']:.3f}")
    ax.legend(fontsize=8)
    save_figure(fig, path)


def plot_frontier(isoflop_fit: dict | None, chinchilla_fit: dict | None, path) -> None:
    """Compute-optimal N*(C) and D*(C) from both approaches, with 95% bootstrap bands."""
    compute = compute_grid([fit for fit in (isoflop_fit, chinchilla_fit) if fit])
    approaches = [(allocation_curves(fit, compute), colour, label) for fit, colour, label in (
        (chinchilla_fit, "C0", "Approach 3 (Chinchilla fit)"), (isoflop_fit, "C1", "Approach 2 (IsoFLOP)")) if fit]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for key, ax, unit in (("N_opt", axes[0], "parameters N*"), ("D_opt", axes[1], "tokens D*")):
        for curves, colour, label in approaches:
            _line_with_band(ax, compute, *curves[key], colour, label)
        if isoflop_fit:
            used = [b for b in isoflop_fit["budgets"] if not b["minimum_at_edge"]]
            values = np.array([b[key] for b in used])
            if key == "N_opt":
                bounds = np.array([b["ci95"]["N_opt"] for b in used], dtype=float)
                errors = np.abs(np.nan_to_num(bounds.T - values, nan=0.0))
                ax.errorbar([b["C"] for b in used], values, yerr=errors, fmt="o", color="C1", ms=4)
            else:
                ax.plot([b["C"] for b in used], values, "o", color="C1", ms=4)
        ax.set(xscale="log", yscale="log", xlabel="training compute C (FLOPs)", ylabel=unit,
               title=f"compute-optimal {unit.split()[0]}")
        ax.legend(fontsize=8)
    save_figure(fig, path)


def plot_fitted_vs_observed(runs: pd.DataFrame, chinchilla_fit: dict, path, *, loss_col: str | None = None) -> None:
    """Predicted against observed loss for every run, coloured by compute, with the identity line."""
    loss_col = _loss_column(runs, loss_col)
    observed = runs[loss_col].to_numpy()
    predicted, (low, high) = predict(chinchilla_fit, runs["N"].to_numpy(), runs["D"].to_numpy())
    fig, ax = plt.subplots(figsize=(5.5, 5))
    colour = np.log10(runs["N"].to_numpy() * runs["D"].to_numpy() * 6.0)
    if np.isfinite(low).all():
        ax.errorbar(observed, predicted, yerr=[predicted - low, high - predicted], fmt="none",
                    ecolor="lightgrey", zorder=1)
    points = ax.scatter(observed, predicted, c=colour, s=14, cmap="viridis", zorder=2)
    fig.colorbar(points, label="log10 of 6 N D (FLOPs)")
    span = [min(observed.min(), predicted.min()), max(observed.max(), predicted.max())]
    ax.plot(span, span, "k--", lw=1, label="predicted = observed")
    error = np.mean(np.abs(predicted / observed - 1))
    ax.set(xlabel="observed loss (nats/token)", ylabel="fitted loss (nats/token)",
           title=f"{chinchilla_fit['law']} fit: mean |relative error| {error:.2%}")
    ax.legend(fontsize=8)
    save_figure(fig, path)


def plot_extrapolation(runs: pd.DataFrame, laws: dict, path, *, loss_col: str | None = None) -> None:
    """The held-out budget's runs against both laws' predictions from the other budgets."""
    loss_col = _loss_column(runs, loss_col)
    check = laws.get("extrapolation")
    fig, ax = plt.subplots(figsize=(7, 5))
    if not check:
        ax.text(0.5, 0.5, "no extrapolation check (fewer than 2 budgets)", ha="center", transform=ax.transAxes)
        save_figure(fig, path)
        return
    held = pd.DataFrame(check["runs"])
    train = runs[~runs["run_id"].astype(str).isin(held["run_id"])] if "run_id" in runs else runs.iloc[:0]
    ax.scatter(train["N"], train[loss_col], color="lightgrey", s=12, label="training budgets")
    ax.scatter(held["N"], held["observed"], color="k", s=28, label=f"held out: C = {check['held_out_C']:.2g}")
    for offset, (name, colour) in enumerate((("chinchilla", "C0"), ("isoflop", "C1"))):
        summary = check["laws"].get(name)
        if not summary:
            continue
        predicted = held[name].apply(lambda row: row["predicted"]).to_numpy()
        low = held[name].apply(lambda row: row["low"]).to_numpy(dtype=float)
        high = held[name].apply(lambda row: row["high"]).to_numpy(dtype=float)
        shifted = held["N"].to_numpy() * (1.03 if offset else 0.97)  # keep the two sets of bars apart
        yerr = None if np.isnan(low).all() else [predicted - low, high - predicted]
        ax.errorbar(shifted, predicted, yerr=yerr, fmt="s", color=colour, ms=4, capsize=2,
                    label=f"{name} prediction (mean |rel. error| {summary['mean_abs_rel_error']:.2%})")
    ax.set(xscale="log", xlabel="parameters N", ylabel="loss (nats/token)",
           title="Extrapolation check: fitted without the largest budget")
    ax.legend(fontsize=8)
    save_figure(fig, path)


def plot_curve(x: np.ndarray, y: np.ndarray, curve_fit: dict, path) -> None:
    """A one-variable loss curve: the points, the fitted law and its 95% band."""
    variable = curve_fit["variable"]
    grid, point, (low, high) = loss_curve(curve_fit, x)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.scatter(x, y, color="k", s=14, label="runs")
    _line_with_band(ax, grid, point, (low, high), "C0", curve_fit["form"])
    labels = {"N": "parameters N", "D": "tokens D", "C": "training compute C (FLOPs)"}
    ax.set(xscale="log", yscale="log", xlabel=labels[variable], ylabel="loss (nats/token)",
           title=f"loss curve in {variable}")
    ax.legend(fontsize=8)
    save_figure(fig, path)


def _loss_column(runs: pd.DataFrame, loss_col: str | None) -> str:
    for candidate in (loss_col, "loss", "val_loss"):
        if candidate and candidate in runs:
            return candidate
    raise KeyError(f"runs have no loss column (tried {loss_col!r}, 'loss', 'val_loss')")


def _line_with_band(ax, x, point, band, colour, label) -> None:
    has_band = band is not None and np.isfinite(band).any()
    ax.plot(x, point, color=colour, label=label + (" with 95% band" if has_band else ""))
    if has_band:
        ax.fill_between(x, band[0], band[1], color=colour, alpha=BAND_ALPHA, lw=0)
