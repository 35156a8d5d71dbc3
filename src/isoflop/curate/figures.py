"""Figures of the curation report, each drawn from a table the curation wrote."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from isoflop.curate.minhash import s_curve
from isoflop.plots import save_figure  # also selects the Agg backend


def plot_cluster_map(embedding_2d: np.ndarray, cluster_ids, path, labels: dict | None = None,
                     title: str = "Document clusters") -> Path:
    """A scatter of the documents' 2-D map coloured by cluster, each cluster named at its centre.

    `labels` optionally maps a cluster id to a short name (e.g. its top terms). Returns the PNG path.
    """
    embedding_2d = np.asarray(embedding_2d, dtype=float)
    cluster_ids = np.asarray(cluster_ids)
    clusters = np.unique(cluster_ids)
    colours = plt.get_cmap("tab20" if len(clusters) > 10 else "tab10")
    fig, ax = plt.subplots(figsize=(8, 7))
    for index, cluster in enumerate(clusters):
        points = embedding_2d[cluster_ids == cluster]
        colour = colours(index % colours.N)
        ax.scatter(points[:, 0], points[:, 1], s=6, alpha=0.6, color=colour, linewidths=0,
                   label=f"{cluster} ({len(points)})")
        centre = np.median(points, axis=0)
        name = str(cluster) if not labels or cluster not in labels else f"{cluster}: {labels[cluster]}"
        ax.annotate(name, centre, fontsize=7, ha="center", va="center",
                    bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": colour, "alpha": 0.8})
    ax.set_xlabel("first principal component")
    ax.set_ylabel("second principal component")
    ax.set_title(f"{title}: {len(embedding_2d)} documents, {len(clusters)} clusters")
    ax.legend(title="cluster (documents)", fontsize=6, title_fontsize=7, markerscale=2,
              loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    return save_figure(fig, path)


def plot_s_curve(bands: int, rows: int, threshold: float, path) -> Path:
    """Probability of becoming an LSH candidate against Jaccard similarity, with the threshold marked."""
    similarity = np.linspace(0, 1, 201)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(similarity, s_curve(similarity, bands, rows), color="C0", label=f"{bands} bands x {rows} rows")
    ax.axvline(threshold, color="C3", linestyle="--", label=f"threshold {threshold}")
    ax.set_xlabel("Jaccard similarity of shingle sets")
    ax.set_ylabel("P(candidate pair)")
    ax.set_title("MinHash LSH S-curve")
    ax.legend(fontsize=8)
    return save_figure(fig, path)
