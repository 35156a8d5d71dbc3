import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from isoflop.curate.minhash import MinHashParams
from isoflop.curate.near_dup import near_duplicate_clusters, near_duplicates, signatures_for_shard
from isoflop.curate.synthetic import edit_text
from isoflop.errors import UserError


def _corpus():
    """10 unrelated documents over a shared vocabulary, each with two light copies (J around 0.9)."""
    rng = np.random.default_rng(0)
    vocab = [f"v{i}" for i in range(300)]
    rows = []
    for k in range(10):
        text = " ".join(rng.choice(vocab, size=300))
        rows.append({"id": f"d{k:02d}", "text": text})
        for c in range(2):
            rows.append({"id": f"d{k:02d}~c{c}", "text": edit_text(text, "insert", 0.01, rng)})
    return pd.DataFrame(rows)


def test_clusters_are_the_planted_ones_with_the_smallest_id_kept():
    docs = _corpus()
    table = near_duplicates(docs, MinHashParams(bands=16, rows=8, threshold=0.8), shard_docs=7)
    assert len(table) == 30
    assert table.set_index("id")["dup_cluster"].to_dict() == {i: i.split("~")[0] for i in docs["id"]}
    assert table["keep"].sum() == 10
    assert (table["jaccard"] > 0.85).all()


def test_spurious_candidates_do_not_chain_unrelated_documents():
    # 128 bands of one row: almost every pair sharing any shingle becomes a candidate.
    docs = _corpus()
    table = near_duplicates(docs, MinHashParams(num_perm=128, bands=128, rows=1, threshold=0.8))
    assert table.groupby("dup_cluster").size().tolist() == [3] * 10


def test_greedy_centres_for_huge_buckets_give_the_same_clusters():
    docs = _corpus()
    params = MinHashParams(bands=16, rows=8, threshold=0.8)
    all_pairs = near_duplicates(docs, params)
    greedy = near_duplicates(docs, params, max_bucket_pairs=1)
    pd.testing.assert_frame_equal(all_pairs[["id", "dup_cluster", "keep"]], greedy[["id", "dup_cluster", "keep"]])


def test_gather_from_parquet_equals_in_memory_and_refuses_mixed_params(tmp_path):
    docs = _corpus()
    params = MinHashParams(bands=16, rows=8, threshold=0.8)
    paths = []
    for k, start in enumerate(range(0, len(docs), 9)):
        paths.append(tmp_path / f"sig-{k}.parquet")
        pq.write_table(signatures_for_shard(docs.iloc[start:start + 9], params), paths[-1])
    pd.testing.assert_frame_equal(near_duplicate_clusters(paths), near_duplicates(docs, params))
    other = tmp_path / "other.parquet"
    pq.write_table(signatures_for_shard(docs.iloc[:3], MinHashParams(bands=8, rows=16)), other)
    with pytest.raises(UserError, match="different or unknown MinHash params"):
        near_duplicate_clusters(paths + [other])


def test_no_candidates_gives_an_empty_table():
    docs = pd.DataFrame({"id": ["a", "b"], "text": ["one two three four five six", "seven eight nine ten"]})
    table = near_duplicates(docs, MinHashParams())
    assert list(table.columns) == ["id", "dup_cluster", "keep", "jaccard"] and len(table) == 0
