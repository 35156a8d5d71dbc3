"""The forecast ledger's reliability diagram: do stated intervals and probabilities hold as often as they say?"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from isoflop.plots import save_figure


def plot_reliability(scored: list[dict], path) -> None:
    """Left: each interval level's stated coverage against the share of landed runs inside it, with a 90%
    binomial band (Wilson); right: "beats" calls binned by stated probability against how often they came
    true. `scored` is `isoflop.ledger.score`'s list."""
    values = [e for e in scored if "observed" in e]
    calls = [e for e in scored if "brier" in e]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4))
    for ax in (left, right):
        ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--")
        ax.set(xlim=(0, 1), ylim=(0, 1.02))
    for level in (0.9, 0.95):
        hits = [e[f"inside{round(100 * level)}"] for e in values]
        if hits:
            low, high = _wilson(sum(hits), len(hits))
            left.errorbar(level, np.mean(hits), yerr=[[np.mean(hits) - low], [high - np.mean(hits)]], fmt="o",
                          capsize=4, label=f"{level:.0%}: {sum(hits)}/{len(hits)} inside")
    left.set(xlim=(0.8, 1.0), ylim=(0.0, 1.02), xlabel="stated coverage", ylabel="observed coverage",
             title=f"prediction intervals ({len(values)} scored)")
    if values:
        left.legend(fontsize=8, loc="lower left")
    if calls:
        stated = np.array([e["probability"] for e in calls])
        outcome = np.array([e["outcome"] for e in calls], dtype=float)
        bins = np.minimum((stated * 5).astype(int), 4)
        for b in np.unique(bins):
            members = bins == b
            right.plot(stated[members].mean(), outcome[members].mean(), "o", color="C1",
                       markersize=4 + 2 * np.sqrt(members.sum()))
    right.set(xlabel="stated probability that B beats A", ylabel="observed frequency",
              title=f'"beats" calls ({len(calls)} scored)')
    save_figure(fig, path)


def _wilson(successes: int, n: int, z: float = 1.645) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (90% at z = 1.645)."""
    p = successes / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return centre - half, centre + half
