"""Exact dedup: byte-identical normalised texts collapse to the document with the smallest id.

Scatter/gather: `text_hashes` runs per shard (a 16-byte digest per document); `exact_duplicates`
reads all those small tables at once, so the decision is global across shards and the same for
any shard count.
"""

from __future__ import annotations

import hashlib

import pandas as pd


def text_hashes(docs: pd.DataFrame, text_col: str = "text", id_col: str = "id") -> pd.DataFrame:
    """Columns `id` and `text_hash` (hex BLAKE2b-128 of the UTF-8 text), one row per document."""
    digests = [hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
               for text in docs[text_col]]
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
