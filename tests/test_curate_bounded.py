"""Exact dedup and the final gather in bounded memory decide exactly what the in-memory versions do."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
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


MERGE_PEAK = """
import sys
from pathlib import Path
import pyarrow as pa, pyarrow.parquet as pq
from isoflop.curate.stage import _merged_by_id
paths = sorted(Path(sys.argv[1]).glob("kept-*.parquet"))
rows = sum(part.num_rows for part in _merged_by_id(paths, pq.read_schema(paths[0]), 32))
print(rows, pa.default_memory_pool().max_memory())
"""


def test_the_merge_holds_a_batch_per_file_not_the_files(tmp_path):
    # pyarrow's ParquetFile pre-buffers every row group it will read: a merge with it held each sorted file
    # whole, so the final gather's peak grew with the corpus (2.5 GB on a 2.2 GB corpus)
    rng = np.random.default_rng(0)
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz     ", dtype=np.uint8)
    for index in range(8):  # 8 files of 2,000 documents of 5,000 bytes: 80 MB of text
        ids = sorted(f"doc-{index}-{k:06d}" for k in range(2000))
        texts = [letters[rng.integers(0, len(letters), 5000)].tobytes().decode() for _ in ids]
        pq.write_table(pa.table({"id": ids, "text": texts}), tmp_path / f"kept-{index}.parquet", row_group_size=32)
    out = subprocess.run([sys.executable, "-c", MERGE_PEAK, str(tmp_path)], capture_output=True, text=True,
                         check=True).stdout.split()
    assert int(out[0]) == 16_000
    assert int(out[1]) < 10e6  # Arrow's peak: a few batches of 32 rows per file, not 80 MB
