"""Exact dedup: byte-identical normalised texts collapse to the document with the smallest id.

Scatter/gather: `text_hashes` runs per shard (a 16-byte digest per document); the gather
`exact_duplicates_on_disk` partitions those tables by hash onto disk, one shard at a time, and decides
each partition alone: equal texts have equal hashes, so they meet in one partition. Its memory is one
shard's hashes plus one partition (at most `rows_per_partition` rows, however large the corpus), and the
decision is global across shards and the same for any shard or partition count.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

ROWS_PER_PARTITION = 500_000  # about 100 MB of ids and hashes in pandas


def utf8_digests(buf: np.ndarray, offsets: np.ndarray) -> list[str]:
    """Hex BLAKE2b-128 of each text given as UTF-8 bytes, text d at buf[offsets[d]:offsets[d + 1]]."""
    view = memoryview(buf)
    return [hashlib.blake2b(view[start:end], digest_size=16).hexdigest()
            for start, end in zip(offsets[:-1].tolist(), offsets[1:].tolist())]


def text_hashes(docs: pd.DataFrame, text_col: str = "text", id_col: str = "id") -> pd.DataFrame:
    """Columns `id` and `text_hash` (`utf8_digests` of the UTF-8 text), one row per document."""
    encoded = [text.encode("utf-8", "surrogatepass") for text in docs[text_col]]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)), out=offsets[1:])
    digests = utf8_digests(np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets)
    return pd.DataFrame({"id": docs[id_col].to_numpy(), "text_hash": digests})


def exact_duplicates(hash_tables: list[pd.DataFrame]) -> pd.DataFrame:
    """Rows `id`, `dup_cluster`, `keep` for every document whose text occurs more than once.

    `dup_cluster` is the smallest id with the same text, the one kept. Documents absent from the
    result are unique and kept.
    """
    hashes = pd.concat(hash_tables, ignore_index=True)
    repeated = hashes[hashes.duplicated("text_hash", keep=False)]
    representative = repeated.groupby("text_hash")["id"].transform("min")
    return pd.DataFrame({
        "id": repeated["id"].to_numpy(),
        "dup_cluster": representative.to_numpy(),
        "keep": (repeated["id"] == representative).to_numpy(),
    }).sort_values("id", ignore_index=True)


def exact_duplicates_on_disk(hash_paths, scratch, rows_per_partition: int = ROWS_PER_PARTITION) -> pd.DataFrame:
    """`exact_duplicates` of the `text_hashes` tables at `hash_paths` (Parquet) in bounded memory: the
    rows are spread over partition files in `scratch` by their hash, then each partition is decided alone.
    The result holds the duplicated documents only (their number is the memory that grows with the corpus)."""
    total = sum(pq.ParquetFile(path).metadata.num_rows for path in hash_paths)
    n_partitions = max(1, math.ceil(total / rows_per_partition))
    if n_partitions == 1:
        return exact_duplicates([pd.read_parquet(path) for path in hash_paths])
    paths = [Path(scratch) / f"hashes-{index:05d}.parquet" for index in range(n_partitions)]
    writers = {}
    try:
        for path in hash_paths:
            table = pq.read_table(path, columns=["id", "text_hash"])
            prefix = np.array([int(digest[:15], 16) for digest in table["text_hash"].to_pylist()], dtype=np.int64)
            partition = prefix % n_partitions
            for index in np.unique(partition):
                if index not in writers:
                    writers[index] = pq.ParquetWriter(paths[index], table.schema)
                writers[index].write_table(table.filter(pa.array(partition == index)))
    finally:
        for writer in writers.values():
            writer.close()
    decided = [exact_duplicates([pd.read_parquet(paths[index])]) for index in sorted(writers)]
    return pd.concat(decided, ignore_index=True).sort_values("id", ignore_index=True)
