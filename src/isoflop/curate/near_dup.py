"""Near-duplicate dedup as scatter -> gather -> scatter, so each shard can be its own Snakemake job.

1. scatter, `signatures_for_shard(shard)`: MinHash signature and LSH band keys per document, a
   small table written to Parquet (num_perm x 4 + bands x 8 bytes per document, no text).
2. gather, `near_duplicate_clusters(signature_tables)`: for one band at a time it reads only that
   band's keys from every shard and keeps the buckets holding two or more documents; then it reads
   the signatures of those candidates only. Peak memory therefore follows the number of candidates
   (plus 16 bytes per document for the band being scanned), never the text. Candidate pairs are
   verified by their estimated Jaccard similarity before they become edges, so a spurious bucket
   collision cannot chain unrelated documents; connected components of the verified edges are the
   duplicate clusters, each represented (and kept) by its smallest id.
3. scatter: each shard drops the ids the table does not keep (`stage.py` passes them on by id).

Everything is keyed by document id and ordered by id, so the result is identical for any number
of shards and any order of rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from isoflop.curate.minhash import MinHashParams, band_keys, estimated_jaccard, signatures
from isoflop.errors import UserError

_PARAMS_KEY = b"isoflop.minhash"


def signatures_for_shard(docs: pd.DataFrame, params: MinHashParams, text_col: str = "text",
                         id_col: str = "id") -> pa.Table:
    """Columns `id`, `n_shingles`, `signature` (num_perm x uint32) and `band_<i>` (uint64 bucket keys).

    The params are stored in the table's metadata so the gather step can refuse a mix of settings.
    """
    sigs, n_shingles = signatures(docs[text_col].tolist(), params)
    return signature_table(docs[id_col].astype(str).tolist(), sigs, n_shingles, params)


def signature_table(ids: list[str], sigs: np.ndarray, n_shingles: np.ndarray, params: MinHashParams) -> pa.Table:
    """The table of `signatures_for_shard` from signatures already computed (`minhash.signatures`)."""
    keys = band_keys(sigs, params)
    columns = {
        "id": pa.array(ids, pa.string()),
        "n_shingles": pa.array(n_shingles, pa.int64()),
        "signature": pa.FixedSizeListArray.from_arrays(pa.array(sigs.ravel(), pa.uint32()), params.num_perm),
        **{f"band_{band}": pa.array(keys[:, band], pa.uint64()) for band in range(params.bands)},
    }
    table = pa.table(columns)
    return table.replace_schema_metadata({_PARAMS_KEY: json.dumps(params.to_dict()).encode()})


class _SignatureSource:
    """One shard's signature table, in memory or as a Parquet path, read a few columns at a time."""

    def __init__(self, source: pa.Table | str | Path):
        self.source = source
        schema = pq.read_schema(source) if isinstance(source, (str, Path)) else source.schema
        meta = (schema.metadata or {}).get(_PARAMS_KEY)
        self.params = MinHashParams(**json.loads(meta)) if meta else None
        self.name = str(source) if isinstance(source, (str, Path)) else "<table>"

    def column(self, name: str) -> np.ndarray:
        table = pq.read_table(self.source, columns=[name]) if isinstance(self.source, (str, Path)) else self.source
        return table.column(name).to_numpy()

    def rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ids, signatures) of the given row numbers."""
        if isinstance(self.source, (str, Path)):
            table = pq.read_table(self.source, columns=["id", "signature"])
        else:
            table = self.source.select(["id", "signature"])
        table = table.take(pa.array(rows, pa.int64()))
        num_perm = table.schema.field("signature").type.list_size
        sigs = table.column("signature").combine_chunks().flatten().to_numpy().reshape(-1, num_perm)
        return np.array(table.column("id").to_pylist(), dtype=object), sigs


def _candidate_buckets(sources: list[_SignatureSource], bands: int) -> list[np.ndarray]:
    """Per band, the global row numbers of documents sharing a bucket, grouped: (bucket, row) pairs."""
    valid = [src.column("n_shingles") > 0 for src in sources]
    offsets = np.cumsum([0] + [len(v) for v in valid])
    buckets = []
    for band in range(bands):
        keys = np.concatenate([src.column(f"band_{band}")[v] for src, v in zip(sources, valid)])
        rows = np.concatenate([np.flatnonzero(v) + off for v, off in zip(valid, offsets)])
        order = np.argsort(keys, kind="stable")
        keys, rows = keys[order], rows[order]
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        sizes = np.diff(np.r_[starts, len(keys)])
        shared = np.repeat(sizes >= 2, sizes)
        bucket_ids = np.repeat(np.arange(len(starts)), sizes)[shared]
        buckets.append(np.stack([bucket_ids, rows[shared]], axis=1))
    return buckets


def _greedy_centre_edges(members: np.ndarray, sigs: np.ndarray, threshold: float) -> np.ndarray:
    """Verified edges of one huge bucket (members are id ranks, ascending), without all its pairs.

    Sweeping in id order, each member is compared with the centres found so far and joins the first
    it matches, or becomes a centre itself: the work follows members x distinct centres, which stays
    small for the boilerplate that fills such buckets.
    """
    centres: list[int] = []
    edges = []
    for member in members:
        if centres:
            similar = estimated_jaccard(sigs[centres], sigs[member][None, :]) >= threshold
            if similar.any():
                edges.append((centres[int(np.argmax(similar))], member))
                continue
        centres.append(member)
    return np.array(edges, dtype=np.int64).reshape(-1, 2)


def _verified_edges(bucket_members: list[np.ndarray], sigs: np.ndarray, threshold: float,
                    max_bucket_pairs: int) -> np.ndarray:
    """Edges (rank_a < rank_b) between candidates whose estimated Jaccard reaches `threshold`.

    `bucket_members` holds, per band, (bucket, rank) rows. Buckets with at most `max_bucket_pairs`
    pairs contribute all their pairs (deduplicated over bands before any is verified); larger ones
    go through `_greedy_centre_edges`.
    """
    pairs, edges = [], []
    for band_rows in bucket_members:
        order = np.lexsort((band_rows[:, 1], band_rows[:, 0]))
        bucket, ranks = band_rows[order, 0], band_rows[order, 1]
        starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
        sizes = np.diff(np.r_[starts, len(bucket)])
        for size in np.unique(sizes):
            first = starts[sizes == size]
            if size * (size - 1) // 2 > max_bucket_pairs:
                edges += [_greedy_centre_edges(ranks[f:f + size], sigs, threshold) for f in first]
                continue
            members = ranks[first[:, None] + np.arange(size)]
            a, b = np.triu_indices(size, 1)
            pairs.append(np.stack([members[:, a].ravel(), members[:, b].ravel()], axis=1))
    if pairs:
        pairs = np.unique(np.concatenate(pairs), axis=0)
        similar = np.concatenate([estimated_jaccard(sigs[chunk[:, 0]], sigs[chunk[:, 1]]) >= threshold
                                  for chunk in np.array_split(pairs, max(1, len(pairs) // 65536))])
        edges.append(pairs[similar])
    return np.unique(np.concatenate(edges), axis=0) if edges else np.empty((0, 2), np.int64)


def near_duplicate_clusters(signature_tables: list[pa.Table | str | Path], threshold: float | None = None,
                            max_bucket_pairs: int = 2000) -> pd.DataFrame:
    """The gather step: rows `id`, `dup_cluster`, `keep`, `jaccard` for documents with a near duplicate.

    `signature_tables` are the outputs of `signatures_for_shard` (tables or Parquet paths), all made
    with the same params. `dup_cluster` is the smallest id of the document's cluster, the one kept;
    `jaccard` is the estimated similarity to it. `threshold` defaults to the params' threshold.
    Documents absent from the result have no verified near duplicate and are kept.
    """
    empty = pd.DataFrame({"id": pd.Series(dtype=str), "dup_cluster": pd.Series(dtype=str),
                          "keep": pd.Series(dtype=bool), "jaccard": pd.Series(dtype=float)})
    sources = [_SignatureSource(src) for src in signature_tables]
    if not sources:
        return empty
    params_seen = {src.params for src in sources}
    if len(params_seen) != 1 or None in params_seen:
        names = ", ".join(src.name for src in sources[:5])
        raise UserError(f"signature tables were made with different or unknown MinHash params: {names}")
    params = params_seen.pop()
    threshold = params.threshold if threshold is None else threshold
    buckets = _candidate_buckets(sources, params.bands)
    candidates = np.unique(np.concatenate([b[:, 1] for b in buckets])) if buckets else np.empty(0, np.int64)
    if len(candidates) == 0:
        return empty

    # Read ids and signatures of the candidates only, then rank them by id: ranks order everything.
    offsets = np.cumsum([0] + [len(src.column("n_shingles")) for src in sources])
    ids, sigs = [], []
    for index, src in enumerate(sources):
        mine = candidates[(candidates >= offsets[index]) & (candidates < offsets[index + 1])]
        if len(mine):
            shard_ids, shard_sigs = src.rows(mine - offsets[index])
            ids.append(shard_ids)
            sigs.append(shard_sigs)
    ids, sigs = np.concatenate(ids), np.concatenate(sigs)
    by_id = np.argsort(ids, kind="stable")
    ids, sigs = ids[by_id], sigs[by_id]
    rank_of_row = np.empty(len(candidates), dtype=np.int64)
    rank_of_row[by_id] = np.arange(len(candidates))

    bucket_members = [np.stack([b[:, 0], rank_of_row[np.searchsorted(candidates, b[:, 1])]], axis=1)
                      for b in buckets]
    edges = _verified_edges(bucket_members, sigs, threshold, max_bucket_pairs)
    if len(edges) == 0:
        return empty

    n = len(ids)
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    sizes = np.bincount(labels)
    in_cluster = sizes[labels] >= 2
    # Ranks follow ids, so the smallest rank of a component is its smallest id.
    first_rank = np.full(len(sizes), n, dtype=np.int64)
    np.minimum.at(first_rank, labels, np.arange(n))
    representative = first_rank[labels]
    members = np.flatnonzero(in_cluster)
    return pd.DataFrame({
        "id": ids[members],
        "dup_cluster": ids[representative[members]],
        "keep": representative[members] == members,
        "jaccard": estimated_jaccard(sigs[members], sigs[representative[members]]),
    })


def near_duplicates(docs: pd.DataFrame, params: MinHashParams, *, shard_docs: int = 20000,
                    max_bucket_pairs: int = 2000, text_col: str = "text", id_col: str = "id") -> pd.DataFrame:
    """In-memory convenience: scatter `docs` into shards of `shard_docs`, then gather (see above)."""
    tables = [signatures_for_shard(docs.iloc[start:start + shard_docs], params, text_col, id_col)
              for start in range(0, len(docs), shard_docs)]
    return near_duplicate_clusters(tables, max_bucket_pairs=max_bucket_pairs)
