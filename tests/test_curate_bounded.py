"""Exact dedup and the final gather in bounded memory decide exactly what the in-memory versions do."""

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from isoflop.curate import curate_shards, fill_defaults, stage
from isoflop.curate.exact import exact_duplicates, exact_duplicates_on_disk, text_hashes


def _shards(tmp_path, n_shards=5, n_docs=400, seed=0):
    rng = np.random.default_rng(seed)
    texts = [f"text {k}" for k in rng.integers(0, 150, n_docs)]  # many repeats, across shards
    docs = pd.DataFrame({"id": [f"d{k:04d}" for k in rng.permutation(n_docs)], "text": texts})
    paths = []
    for index in range(n_shards):
        paths.append(tmp_path / f"hashes-{index}.parquet")
        text_hashes(docs.iloc[index::n_shards]).to_parquet(paths[-1], index=False)
    return paths


def test_partitioned_exact_dedup_equals_the_in_memory_decision(tmp_path):
    paths = _shards(tmp_path)
    in_memory = exact_duplicates([pd.read_parquet(path) for path in paths])
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    on_disk = exact_duplicates_on_disk(paths, scratch, rows_per_partition=37)  # 11 partitions
    assert len(list(scratch.glob("hashes-*.parquet"))) == 11
    pd.testing.assert_frame_equal(on_disk, in_memory)
    assert len(in_memory) > 300 and in_memory["keep"].sum() < 150  # the test has real duplicate groups


def _docs(n=300, seed=1):
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocab = ["".join(rng.choice(letters, 5)) for _ in range(800)]
    rows = [{"id": f"p{k:04d}", "domain": ("prose", "notes", "mail")[k % 3],
             "text": " ".join(rng.choice(vocab, 90))} for k in range(n)]
    rows += [{"id": f"z{k:04d}", "domain": "prose", "text": rows[k]["text"]} for k in range(0, n, 7)]  # exact
    rows += [{"id": f"q{k:04d}", "domain": "notes", "text": "too short"} for k in range(12)]  # quality
    return pd.DataFrame(rows)


def _curate(tmp_path, name, cfg, n_shards=3):
    docs = _docs().assign(source="synthetic")
    work = tmp_path / name
    work.mkdir()
    shards = []
    for index in range(n_shards):
        shards.append(work / f"shard-{index}.parquet")
        docs.iloc[index::n_shards][["id", "domain", "source", "text"]].to_parquet(shards[-1], index=False)
    (work / "manifest.json").write_text(json.dumps({"documents": len(docs)}))
    curate_shards(shards, work / "manifest.json", fill_defaults(cfg), 0, work, work / "curated")
    return work / "curated"


def test_merge_in_small_row_groups_writes_the_same_tables_and_report(tmp_path, monkeypatch):
    cfg = {"cluster": {"n_clusters": 4}, "val_fraction": 0.1}
    whole = _curate(tmp_path, "whole", cfg)
    monkeypatch.setattr(stage, "MERGE_BUFFER_ROWS", 48)  # 16 rows per shard
    monkeypatch.setattr("isoflop.curate.exact.ROWS_PER_PARTITION", 25)
    bounded = _curate(tmp_path, "bounded", {**cfg, "row_group_mib": 0.002})
    for split in ("train", "val"):
        pd.testing.assert_frame_equal(pd.read_parquet(bounded / f"{split}.parquet"),
                                      pd.read_parquet(whole / f"{split}.parquet"))
    assert pq.ParquetFile(whole / "train.parquet").num_row_groups == 1
    assert pq.ParquetFile(bounded / "train.parquet").num_row_groups > 5
    report, bounded_report = (json.loads((f / "curation.json").read_text()) for f in (whole, bounded))
    del bounded_report["curation"]["config"]["row_group_mib"], report["curation"]["config"]["row_group_mib"]
    assert bounded_report == report
    stages = report["curation"]["stages"]
    assert stages["exact_dedup"]["duplicate_groups"] == 43
    assert stages["quality"]["removed_by_rule"]["notes"]["min_words"] == 12
    train = pd.read_parquet(whole / "train.parquet")
    assert train["id"].is_monotonic_increasing and not train["id"].str.startswith("z").any()
