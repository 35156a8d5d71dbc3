"""The kept set and cluster ids are identical for 1, 4 and 16 shards, and equal to the in-memory run."""

import numpy as np
import pandas as pd
import pytest

from isoflop.curate import curate_documents, curate_shards, fill_defaults
from isoflop.curate.synthetic import inject_near_duplicates, stdlib_documents
from isoflop.workflow import write_json

SEED = 3


@pytest.fixture(scope="module")
def corpus():
    docs = stdlib_documents(90, seed=1)
    docs, _ = inject_near_duplicates(docs, 30, rates=[0.01, 0.03, 0.1], seed=2)
    exact_copies = docs.iloc[:5].assign(id=lambda d: d["id"] + "~exact")
    return pd.concat([docs, exact_copies], ignore_index=True).assign(source="stdlib")


def _sharded(docs: pd.DataFrame, cfg: dict, n_shards: int, folder) -> pd.DataFrame:
    """The curation as the workflow runs it over `n_shards` shards: (id, cluster) of the kept documents."""
    order = np.random.default_rng(n_shards).permutation(len(docs))  # shards hold arbitrary rows
    folder.mkdir()
    shards = [folder / f"shard-{k:05d}.parquet" for k in range(n_shards)]
    for k, path in enumerate(shards):
        docs.iloc[order[k::n_shards]].to_parquet(path, index=False)
    write_json(folder / "manifest.json", {"documents": len(docs)})
    curate_shards(shards, folder / "manifest.json", cfg, SEED, folder, folder / "curated")
    kept = pd.concat([pd.read_parquet(folder / "curated" / f"{split}.parquet") for split in ("train", "val")])
    return kept[["id", "cluster"]].sort_values("id", ignore_index=True)


def test_same_kept_set_and_clusters_for_1_4_16_shards_and_in_memory(corpus, tmp_path):
    cfg = fill_defaults({"cluster": {"n_clusters": 6}, "semantic_dedup": {"eps": 0.01}})
    results = {n: _sharded(corpus, cfg, n, tmp_path / f"shards{n}") for n in (1, 4, 16)}
    pd.testing.assert_frame_equal(results[1], results[4])
    pd.testing.assert_frame_equal(results[1], results[16])

    kept, report = curate_documents(corpus, cfg, seed=SEED)
    in_memory = kept[["id", "cluster"]].sort_values("id", ignore_index=True)
    pd.testing.assert_frame_equal(results[1], in_memory, check_dtype=False)
    # the check is not vacuous: every dedup stage removed something
    removed = {s: sum(r["docs_in"] - r["docs_out"] for r in report["stages"][s]["per_domain"].values())
               for s in ("quality", "exact_dedup", "near_dup", "semantic_dedup")}
    assert all(n > 0 for n in removed.values()), removed

    shuffled, _ = curate_documents(corpus.sample(frac=1, random_state=7), cfg, seed=SEED)
    pd.testing.assert_frame_equal(in_memory, shuffled[["id", "cluster"]].sort_values("id", ignore_index=True))
