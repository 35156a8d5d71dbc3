import numpy as np
import pytest

from isoflop.curate.cluster import assign_levels, balanced_sample, even_allocation, hierarchical_kmeans, kmeans
from isoflop.curate.cluster import assign
from isoflop.curate.semdedup import semantic_duplicates


def test_even_allocation_water_fills():
    assert even_allocation([1, 5, 10], 9).tolist() == [1, 4, 4]
    assert even_allocation([1, 5, 10], 100).tolist() == [1, 5, 10]
    assert even_allocation([3, 3, 3], 7).tolist() == [3, 2, 2]


def test_balanced_sample_draws_evenly_from_unbalanced_clusters():
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], dtype=np.float32)
    sizes = [400, 40, 40, 20]
    points = np.concatenate([c + rng.normal(0, 0.5, (n, 2)) for c, n in zip(centres, sizes)]).astype(np.float32)
    truth = np.repeat(np.arange(4), sizes)
    tree = hierarchical_kmeans(points, [8, 4], seed=0, resampling_steps=2, resample_points=5)
    levels = assign_levels(points, tree)
    top = levels[-1]
    # the top level recovers the four blobs
    assert len({tuple(np.unique(truth[top == c])) for c in np.unique(top)}) == 4
    chosen = balanced_sample(levels, 80, priority=rng.random(len(points)))
    assert chosen.sum() == 80
    assert np.bincount(truth[chosen], minlength=4).tolist() == [20, 20, 20, 20]


def test_kmeans_and_assign_are_deterministic():
    points = np.random.default_rng(1).normal(size=(200, 5)).astype(np.float32)
    a, b = kmeans(points, 7, seed=3), kmeans(points, 7, seed=3)
    np.testing.assert_array_equal(a, b)
    assert np.bincount(assign(points, a), minlength=7).min() > 0


def test_semdedup_drops_near_copies_of_kept_documents_only():
    base = np.eye(4, dtype=np.float32)
    near = base[0] + np.array([0, 0.01, 0, 0], dtype=np.float32)
    vectors = np.vstack([base, near / np.linalg.norm(near)])
    ids = ["b", "c", "d", "e", "a"]  # the near copy of "b" has the smallest id: it is kept
    removed = semantic_duplicates(ids, vectors, [0, 0, 0, 0, 0], eps=0.001)
    assert removed["id"].tolist() == ["b"] and removed["duplicate_of"].tolist() == ["a"]
    assert removed["cosine"].iloc[0] == pytest.approx(1 / np.sqrt(1.0001), abs=1e-6)
    # in different clusters nothing is compared
    assert len(semantic_duplicates(ids, vectors, [0, 1, 2, 3, 4], eps=0.001)) == 0
