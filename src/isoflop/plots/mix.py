"""Figures of the mixture search, drawn from summary.json (isoflop.mix.search.summary_stage)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from isoflop.plots import save_figure


def plot_held_out(rounds: list[dict], path) -> None:
    """Per predictor, each later round's proxies: the loss the round before predicted against the observed."""
    models = sorted({model for r in rounds for model in r["held_out"]})
    fig, axes = plt.subplots(1, len(models), figsize=(3.6 * len(models), 3.4), squeeze=False)
    for ax, model in zip(axes[0], models):
        values = []
        for r in rounds:
            if model in r["held_out"]:
                held = r["held_out"][model]
                ax.scatter(held["observed"], held["predicted"], s=18, label=f"round {r['round']}: "
                           f"Spearman {held['spearman']:.2f}, MAE {held['mae']:.3g}")
                values += held["observed"] + held["predicted"]
        lo, hi = min(values), max(values)
        ax.plot([lo, hi], [lo, hi], color="grey", lw=1, ls="--")
        ax.set(title=model, xlabel="observed target loss", ylabel="predicted (fit of the rounds before)")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    save_figure(fig, path)


def plot_chosen_mixtures(rounds: list[dict], natural: dict[str, float], names: dict[str, str], path) -> None:
    """The mixture chosen after each round beside the natural one, a bar per group (`names`: its label)."""
    groups = sorted(natural)
    series = [("natural", natural)] + [(f"after round {r['round']}", r["chosen"]["weights"]) for r in rounds]
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(groups) + 2), 4))
    x = np.arange(len(groups))
    for index, (label, weights) in enumerate(series):
        ax.bar(x + index * width, [weights.get(g, 0.0) for g in groups], width, label=label)
    ax.set_xticks(x + width * (len(series) - 1) / 2, [names.get(g, g) for g in groups], rotation=30, ha="right",
                  fontsize=7)
    ax.set(ylabel="weight", title="mixture chosen per round")
    ax.legend(fontsize=8)
    save_figure(fig, path)
