"""`isoflop dedup`: exact and near-duplicate dedup of one Parquet table, outside the workflow."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from isoflop.errors import UserError

if TYPE_CHECKING:  # the CLI registers this command without importing pandas, numba or scipy
    import pandas as pd

    from isoflop.curate.minhash import MinHashParams


def dedup_clusters(ids: list[str], texts, params: MinHashParams, workers: int = 1,
                   max_bucket_pairs: int = 2000) -> list[str]:
    """Per document, the id its cluster keeps (the smallest), from exact then near-dup dedup of `texts` (an
    Arrow string array).

    Exact duplicates (equal after `normalise_text`) join their representative's near-dup cluster. The texts
    stay in Arrow's buffers: hashes and signatures read the normalised UTF-8 bytes (`normalised_utf8`), and
    only texts that normalisation changes become Python strings.
    """
    import numpy as np
    import pandas as pd

    from isoflop.curate.exact import exact_duplicates, utf8_digests
    from isoflop.curate.minhash import utf8_signatures
    from isoflop.curate.near_dup import near_duplicate_clusters, signature_table
    from isoflop.curate.normalise import normalised_utf8

    buf, offsets = normalised_utf8(texts)
    exact = exact_duplicates([pd.DataFrame({"id": ids, "text_hash": utf8_digests(buf, offsets)})])
    exact_rep = dict(zip(exact["id"], exact["dup_cluster"]))
    removed = set(exact.loc[~exact["keep"], "id"])
    survivors = np.array([doc_id not in removed for doc_id in ids], dtype=bool)
    if len(buf) and buf.max() >= 128:  # texts that are not ASCII are lower-cased in Python
        buf, offsets = normalised_utf8(texts, lower=True)
    sigs, n_shingles = utf8_signatures(buf, offsets, params, workers)
    table = signature_table([doc_id for doc_id, kept in zip(ids, survivors) if kept], sigs[survivors],
                            n_shingles[survivors], params)
    near = near_duplicate_clusters([table], max_bucket_pairs=max_bucket_pairs)
    near_rep = dict(zip(near["id"], near["dup_cluster"]))
    return [near_rep.get(rep, rep) for rep in (exact_rep.get(doc_id, doc_id) for doc_id in ids)]


def dedup_table(docs: pd.DataFrame, params: MinHashParams, text_col: str = "text", id_col: str = "id",
                max_bucket_pairs: int = 2000) -> pd.DataFrame:
    """`docs` plus `dup_cluster` (the id its cluster keeps) and `keep` (see `dedup_clusters`)."""
    import pyarrow as pa

    ids = docs[id_col].astype(str).tolist()
    cluster = dedup_clusters(ids, pa.array(docs[text_col].tolist(), pa.large_string()), params,
                             max_bucket_pairs=max_bucket_pairs)
    return docs.assign(dup_cluster=cluster, keep=[c == i for c, i in zip(cluster, ids)])


def _read_table(path: Path, text_col: str, id_col: str):
    """The input as an Arrow table (no pandas index columns), its ids as strings and its texts."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if not path.exists():
        raise UserError(f"input file not found: {path}")
    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow raises several types for a file that is not Parquet
        raise UserError(f"{path} is not a readable Parquet file: {err}") from None
    index_columns = [c for c in (table.schema.pandas_metadata or {}).get("index_columns", []) if isinstance(c, str)]
    table = table.drop_columns(index_columns).replace_schema_metadata(None)
    for col in (text_col, id_col):
        if col not in table.column_names:
            raise UserError(f"{path} has no column {col!r}; columns: {', '.join(table.column_names)}")
    if pc.count_distinct(table[id_col], mode="all").as_py() != table.num_rows:
        raise UserError(f"column {id_col!r} of {path} must hold unique ids")
    if not pa.types.is_string(table[text_col].type) and not pa.types.is_large_string(table[text_col].type):
        raise UserError(f"column {text_col!r} of {path} must hold text; it holds {table[text_col].type}")
    return table, [str(v) for v in table[id_col].to_pylist()], table[text_col]


def _run(args) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from isoflop.curate.minhash import MinHashParams, optimal_bands_rows

    if (args.bands is None) != (args.rows is None):
        raise UserError("--bands and --rows go together (or leave both out to choose them from --threshold)")
    bands, rows = (args.bands, args.rows) if args.bands else optimal_bands_rows(args.threshold, args.num_perm, 0.7)
    try:
        params = MinHashParams(num_perm=args.num_perm, ngram=args.ngram, bands=bands, rows=rows,
                               threshold=args.threshold)
    except ValueError as err:
        raise UserError(str(err)) from None
    if args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    path = Path(args.input)
    table, ids, texts = _read_table(path, args.text_col, args.id_col)
    cluster = dedup_clusters(ids, texts, params, args.workers)
    keep = [c == i for c, i in zip(cluster, ids)]
    out = table.append_column("dup_cluster", pa.array(cluster, pa.string())).append_column(
        "keep", pa.array(keep, pa.bool_()))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(out, args.out)
    removed = len(keep) - sum(keep)
    print(f"{len(keep)} documents, {removed} duplicates removed ({removed / max(len(keep), 1):.1%}), "
          f"bands x rows = {bands} x {rows}; wrote {args.out}", file=sys.stderr)
    return 0


DEDUP_EXAMPLES = """examples:
  isoflop dedup docs.parquet --out deduped.parquet
  isoflop dedup docs.parquet --text-col body --id-col doc --threshold 0.7 --out deduped.parquet
  isoflop dedup docs.parquet --num-perm 256 --bands 32 --rows 8 --out deduped.parquet
"""


def register(subparsers) -> None:
    """Add `isoflop dedup` to the CLI."""

    parser = subparsers.add_parser(
        "dedup", help="exact and near-duplicate dedup (MinHash LSH) of a Parquet table",
        description="Writes the input rows plus `dup_cluster` (the id its cluster keeps: the smallest) and "
        "`keep` (bool). Near duplicates: estimated Jaccard similarity of word-n-gram shingle sets >= threshold, "
        "verified pair by pair before clusters merge.",
        epilog=DEDUP_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="input Parquet file")
    parser.add_argument("--out", required=True, help="output Parquet file")
    parser.add_argument("--text-col", default="text", help="column holding the text (default: text)")
    parser.add_argument("--id-col", default="id", help="column holding unique document ids (default: id)")
    parser.add_argument("--threshold", type=float, default=0.8, help="Jaccard threshold (default: 0.8)")
    parser.add_argument("--ngram", type=int, default=5, help="words per shingle (default: 5)")
    parser.add_argument("--num-perm", type=int, default=128, help="signature length (default: 128)")
    parser.add_argument("--bands", type=int, default=None, help="LSH bands (default: chosen from threshold)")
    parser.add_argument("--rows", type=int, default=None, help="rows per band (default: chosen from threshold)")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)),
                        help="threads computing MinHash signatures (default: the cores this process may use)")
    parser.set_defaults(func=_run)
