"""k-means and hierarchical k-means with balanced sampling (Vo et al. 2024), plus top terms per cluster.

Fitting takes the rows in id order and a seed, so the centroids do not depend on how documents
were sharded; `assign` then labels any shard by its nearest centroid.

Hierarchical k-means (Vo et al. 2024, "Automatic Data Curation for Self-Supervised Learning"):
level 0 clusters the documents, each higher level clusters the centroids of the level below. At
every level, "resampling" steps re-fit the centroids on the `resample_points` points nearest to
each centroid, which pulls centroids away from dense regions towards an even cover of concepts.
`balanced_sample` then draws a subset evenly over the tree: the budget is split equally between
top clusters (a small cluster gives what it cannot use to the others), recursively down to the
documents.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans


def kmeans(points: np.ndarray, n_clusters: int, seed: int, init: np.ndarray | None = None) -> np.ndarray:
    """Centroids [k, dim] of k-means on `points` (k capped by the number of distinct points)."""
    k = min(n_clusters, len(np.unique(points, axis=0)))
    if init is not None and len(init) == k:
        model = KMeans(n_clusters=k, init=init, n_init=1, random_state=seed)
    else:
        model = KMeans(n_clusters=k, n_init=3, random_state=seed)
    return model.fit(points).cluster_centers_.astype(np.float32)


def assign(points: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid (Euclidean) for every row of `points`."""
    distances = (points**2).sum(1)[:, None] - 2 * points @ centroids.T + (centroids**2).sum(1)[None, :]
    return np.argmin(distances, axis=1)


def _resampled(points: np.ndarray, centroids: np.ndarray, steps: int, per_cluster: int, seed: int) -> np.ndarray:
    """Vo et al.'s resampling: re-fit k-means on the points nearest each centroid, `steps` times."""
    for _ in range(steps):
        labels = assign(points, centroids)
        distance = np.linalg.norm(points - centroids[labels], axis=1)
        nearest = np.concatenate([
            members[np.argsort(distance[members], kind="stable")[:per_cluster]]
            for members in (np.flatnonzero(labels == c) for c in range(len(centroids)))
        ])
        centroids = kmeans(points[np.sort(nearest)], len(centroids), seed, init=centroids)
    return centroids


def hierarchical_kmeans(points: np.ndarray, sizes: list[int], seed: int, resampling_steps: int = 2,
                        resample_points: int = 10) -> list[np.ndarray]:
    """Centroids per level, finest first (`sizes[i]` clusters); level i+1 clusters level i's centroids."""
    levels = []
    for size in sizes:
        centroids = kmeans(points, size, seed)
        centroids = _resampled(points, centroids, resampling_steps, resample_points, seed)
        levels.append(centroids)
        points = centroids
    return levels


def assign_levels(points: np.ndarray, levels: list[np.ndarray]) -> list[np.ndarray]:
    """Every point's cluster id at each level of a `hierarchical_kmeans` tree, finest first."""
    labels = [assign(points, levels[0])]
    for below, above in zip(levels[:-1], levels[1:]):
        labels.append(assign(below, above)[labels[-1]])
    return labels


def even_allocation(capacities: np.ndarray, budget: int) -> np.ndarray:
    """Split `budget` as equally as possible over groups holding at most `capacities` each.

    Water filling: groups that cannot take an equal share give all they have; the remainder goes
    to the others, and leftover units go to the first groups in the given order.
    """
    capacities = np.asarray(capacities, dtype=np.int64)
    counts = np.zeros(len(capacities), dtype=np.int64)
    budget = min(int(budget), int(capacities.sum()))
    while budget > 0:
        open_groups = np.flatnonzero(counts < capacities)
        share = max(budget // len(open_groups), 1)
        for g in open_groups:
            take = min(share, capacities[g] - counts[g], budget)
            counts[g] += take
            budget -= take
            if budget == 0:
                break
    return counts


def balanced_sample(labels_per_level: list[np.ndarray], budget: int, priority: np.ndarray) -> np.ndarray:
    """Boolean mask of `budget` documents drawn evenly over the cluster tree (Vo et al. 2024).

    `labels_per_level` is `hierarchical_kmeans`' output (finest first); `priority` orders the
    documents inside a finest cluster (lowest first; a hash of the id gives a reproducible random
    draw).
    """
    chosen = np.zeros(len(priority), dtype=bool)

    def draw(docs: np.ndarray, level: int, n: int) -> None:
        if level < 0:
            chosen[docs[np.argsort(priority[docs], kind="stable")[:n]]] = True
            return
        groups = [docs[labels_per_level[level][docs] == g] for g in np.unique(labels_per_level[level][docs])]
        for group, count in zip(groups, even_allocation([len(g) for g in groups], n)):
            if count:
                draw(group, level - 1, count)

    draw(np.arange(len(priority)), len(labels_per_level) - 1, budget)
    return chosen


def top_terms(sums: np.ndarray, counts: np.ndarray, feature_names: np.ndarray, n_terms: int) -> dict[int, list[str]]:
    """Per non-empty cluster, the `n_terms` terms whose mean TF-IDF weight most exceeds their corpus-wide mean,
    from each cluster's sum of TF-IDF rows (`sums`, clusters x terms) and its number of documents (`counts`).

    Subtracting the corpus mean ranks what sets a cluster apart above words every cluster uses. Sums rather
    than rows because shards add them up, so the terms do not depend on the sharding.
    """
    overall = sums.sum(axis=0) / max(counts.sum(), 1)
    terms = {}
    for cluster in np.flatnonzero(counts):
        lift = sums[cluster] / counts[cluster] - overall
        best = np.argsort(-lift, kind="stable")[:n_terms]
        terms[int(cluster)] = [str(feature_names[i]) for i in best if lift[i] > 0]
    return terms
