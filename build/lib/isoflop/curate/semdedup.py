"""SemDeDup (Abbas et al. 2023): semantic duplicates removed inside each embedding cluster.

Within a cluster, documents are visited in id order; a document is removed when the cosine
similarity of its embedding to an earlier *kept* document exceeds 1 - eps. Working per cluster
keeps the similarity matrix small (a cluster can be its own job), and visiting in id order makes
the kept set independent of sharding.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

_BLOCK = 1024  # rows of the similarity matrix held at once


def _cluster_duplicates(vectors: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """(index of the kept document each row duplicates, or -1; that cosine similarity) for one cluster."""
    n = len(vectors)
    duplicate_of = np.full(n, -1, dtype=np.int64)
    similarity = np.zeros(n, dtype=np.float32)
    for start in range(0, n, _BLOCK):
        block = vectors[start:start + _BLOCK] @ vectors.T
        for row in range(len(block)):
            i = start + row
            if duplicate_of[i] >= 0:
                continue
            later = np.flatnonzero(block[row, i + 1:] > 1.0 - eps) + i + 1
            later = later[duplicate_of[later] < 0]
            duplicate_of[later] = i
            similarity[later] = block[row, later]
    return duplicate_of, similarity


def semantic_duplicates(ids, embeddings: np.ndarray, clusters, eps: float) -> pd.DataFrame:
    """Rows `id`, `duplicate_of`, `cosine` for every document SemDeDup removes (the others are kept).

    `embeddings` must have unit-length rows; `clusters` gives each document's cluster.
    """
    ids = np.asarray(ids, dtype=object)
    clusters = np.asarray(clusters)
    removed = []
    for cluster in np.unique(clusters):
        members = np.flatnonzero(clusters == cluster)
        members = members[np.argsort(ids[members], kind="stable")]
        duplicate_of, similarity = _cluster_duplicates(embeddings[members], eps)
        hit = duplicate_of >= 0
        removed.append(pd.DataFrame({"id": ids[members[hit]], "duplicate_of": ids[members[duplicate_of[hit]]],
                                     "cosine": similarity[hit]}))
    if not removed:
        return pd.DataFrame({"id": [], "duplicate_of": [], "cosine": []})
    return pd.concat(removed, ignore_index=True).sort_values("id", ignore_index=True)
