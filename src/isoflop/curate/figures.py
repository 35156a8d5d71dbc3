"""Figures of the curation report, each drawn from a table the curation wrote."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from isoflop.curate.minhash import s_curve
from isoflop.plots import save_figure  # also selects the Agg backend

# Okabe and Ito's eight colours, told apart under the common colour-vision deficiencies (tab10/tab20 are not);
# past eight clusters the marker changes too, so every cluster stays one distinct colour and marker pair.
OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000")
MARKERS = "osD^vP*X"


def plot_cluster_map(embedding_2d: np.ndarray, cluster_ids, path, labels: dict | None = None,
                     title: str = "Document clusters") -> Path:
    """A scatter of the documents' 2-D map coloured by cluster, each cluster's id at its centre; the legend
    names each cluster and counts the documents drawn, so it agrees with any table of the same documents.

    `labels` optionally maps a cluster id to a short name (e.g. its top terms). Returns the PNG path.
    """
    embedding_2d = np.asarray(embedding_2d, dtype=float)
    cluster_ids = np.asarray(cluster_ids)
    clusters = np.unique(cluster_ids)
    fig, ax = plt.subplots(figsize=(8, 6))
    for index, cluster in enumerate(clusters):
        points = embedding_2d[cluster_ids == cluster]
        colour = OKABE_ITO[index % len(OKABE_ITO)]
        marker = MARKERS[(index // len(OKABE_ITO)) % len(MARKERS)]
        # the id at the cluster's centre, its name in the legend: names at the centres overlap where clusters do
        name = f"{cluster} ({len(points)})" + (f": {labels[cluster]}" if labels and cluster in labels else "")
        ax.scatter(points[:, 0], points[:, 1], s=14, alpha=0.7, color=colour, marker=marker, linewidths=0,
                   label=name)
        ax.annotate(str(cluster), np.median(points, axis=0), fontsize=8, ha="center", va="center",
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": colour, "alpha": 0.8})
    ax.set_xlabel("first principal component")
    ax.set_ylabel("second principal component")
    ax.set_title(f"{title}: {len(embedding_2d)} documents, {len(clusters)} clusters")
    ax.legend(title="cluster (documents): top terms", fontsize=7, title_fontsize=8, markerscale=1.5,
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
