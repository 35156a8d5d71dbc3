"""Training-loss curves of every run, one panel per compute budget."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from isoflop.plots import save_figure

COLUMNS = 3  # panels per row: one row of five budgets is too wide to read at page width


def _smoothed(values: np.ndarray, window: int) -> np.ndarray:
    if len(values) < 2 * window:
        return values
    kernel = np.ones(window) / window
    return np.convolve(values, kernel, mode="valid")


def plot_loss_curves(runs: pd.DataFrame, curves: dict[str, pd.DataFrame], path) -> None:
    """Train loss (smoothed) against tokens for each run, coloured by model size; the final validation
    loss as a dot. `curves` maps run_id to its curve.parquet frame (columns step, tokens, train_loss)."""
    budgets = sorted(runs["budget"].unique())
    columns = min(COLUMNS, len(budgets))
    rows = math.ceil(len(budgets) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.9 * columns, 3.4 * rows), sharey=True, squeeze=False)
    for unused in axes.flat[len(budgets):]:
        unused.set_visible(False)
    sizes = np.log(runs["N"].to_numpy(dtype=float))
    lo, hi = sizes.min(), max(sizes.max(), sizes.min() + 1e-9)
    cmap = plt.get_cmap("viridis")
    for ax, budget in zip(axes.flat, budgets):
        for _, run in runs[runs["budget"] == budget].sort_values("N").iterrows():
            colour = cmap((np.log(run["N"]) - lo) / (hi - lo))
            curve = curves.get(run["run_id"])
            if curve is not None and "train_loss" in curve:
                train = curve[["tokens", "train_loss"]].dropna()
                window = max(1, len(train) // 50)
                y = _smoothed(train["train_loss"].to_numpy(), window)
                x = train["tokens"].to_numpy()[len(train) - len(y):]
                ax.plot(x, y, color=colour, lw=1.3, label=f"N={run['N']:,.0f}")
            if np.isfinite(run["val_loss"]):
                ax.plot(run["D"], run["val_loss"], "o", color=colour, ms=5, mec="black", mew=0.5)
            if run["status"] != "ok":
                ax.annotate(run["status"], (run["D"], ax.get_ylim()[1]), color="crimson", fontsize=8)
        ax.set_xscale("log")
        ax.set_title(f"budget C = {budget:.2g} FLOPs")
        ax.set_xlabel("training tokens D")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, title="size (line: train, dot: val)", title_fontsize=7)
    for row in axes:
        row[0].set_ylabel("loss (nats/token)")
    fig.suptitle("Loss curves per compute budget", fontsize=12)
    save_figure(fig, path)
