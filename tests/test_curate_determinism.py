"""The kept set and cluster ids are identical for 1, 4 and 16 shards, and equal to the in-memory run."""

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from isoflop.curate import (MinHashParams, apply_keep, assign, curate_documents, exact_duplicates, fill_defaults,
                            fit_sample, kmeans, make_embedder, near_duplicate_clusters, normalise_documents,
                            semantic_duplicates, signatures_for_shard, text_hashes)
from isoflop.curate.quality import apply_quality_rules
from isoflop.curate.synthetic import inject_near_duplicates, stdlib_documents

SEED = 3


@pytest.fixture(scope="module")
def corpus():
    docs = stdlib_documents(90, seed=1)
    docs, _ = inject_near_duplicates(docs, 30, rates=[0.01, 0.03, 0.1], seed=2)
    exact_copies = docs.iloc[:5].assign(id=lambda d: d["id"] + "~exact")
    return pd.concat([docs, exact_copies], ignore_index=True)


def _sharded(docs: pd.DataFrame, cfg: dict, n_shards: int, folder) -> pd.DataFrame:
    """The curation as the workflow runs it: per-shard jobs, gathers through Parquet files."""
    order = np.random.default_rng(n_shards).permutation(len(docs))  # shards hold arbitrary rows
    shards = [docs.iloc[order[i::n_shards]] for i in range(n_shards)]
    shards = [apply_quality_rules(normalise_documents(s), cfg["quality"])[0] for s in shards]
    exact = exact_duplicates([text_hashes(s) for s in shards])
    shards = [apply_keep(s, exact) for s in shards]
    params = MinHashParams.from_config(cfg["near_dup"])
    paths = []
    for k, shard in enumerate(shards):
        paths.append(folder / f"signatures-{n_shards}-{k}.parquet")
        pq.write_table(signatures_for_shard(shard, params), paths[-1])
    near = near_duplicate_clusters(paths, max_bucket_pairs=cfg["near_dup"]["max_bucket_pairs"])
    shards = [apply_keep(s, near) for s in shards]

    ids = np.concatenate([s["id"].to_numpy(dtype=object) for s in shards])
    texts = [t for s in shards for t in s["text"]]
    sample = fit_sample(ids, cfg["embed"]["fit_docs"], SEED)
    embedder = make_embedder(cfg["embed"], SEED).fit([texts[i] for i in sample])
    centroids = kmeans(embedder.transform([texts[i] for i in sample]), cfg["cluster"]["n_clusters"], SEED)
    vectors = [embedder.transform(s["text"].tolist()) for s in shards]
    clusters = [assign(v, centroids) for v in vectors]
    removed = semantic_duplicates(ids, np.concatenate(vectors), np.concatenate(clusters),
                                  cfg["semantic_dedup"]["eps"])
    out = pd.DataFrame({"id": ids, "cluster": np.concatenate(clusters)})
    return out[~out["id"].isin(set(removed["id"]))].sort_values("id", ignore_index=True)


def test_same_kept_set_and_clusters_for_1_4_16_shards_and_in_memory(corpus, tmp_path):
    cfg = fill_defaults({"cluster": {"n_clusters": 6}, "semantic_dedup": {"eps": 0.01}})
    results = {n: _sharded(corpus, cfg, n, tmp_path) for n in (1, 4, 16)}
    pd.testing.assert_frame_equal(results[1], results[4])
    pd.testing.assert_frame_equal(results[1], results[16])

    kept, report = curate_documents(corpus, cfg, progress=False, seed=SEED)
    in_memory = kept[["id", "cluster"]].sort_values("id", ignore_index=True)
    pd.testing.assert_frame_equal(results[1], in_memory, check_dtype=False)
    # the check is not vacuous: every dedup stage removed something
    removed = {s: sum(r["docs_in"] - r["docs_out"] for r in report["stages"][s]["per_domain"].values())
               for s in ("quality", "exact_dedup", "near_dup", "semantic_dedup")}
    assert all(n > 0 for n in removed.values()), removed

    shuffled, _ = curate_documents(corpus.sample(frac=1, random_state=7), cfg, progress=False, seed=SEED)
    pd.testing.assert_frame_equal(in_memory, shuffled[["id", "cluster"]].sort_values("id", ignore_index=True))
