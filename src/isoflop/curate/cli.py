"""`isoflop dedup`: exact and near-duplicate dedup of one Parquet table, outside the workflow."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from isoflop.errors import UserError

if TYPE_CHECKING:  # the CLI registers this command without importing pandas, numba or scipy
    import pandas as pd

    from isoflop.curate.minhash import MinHashParams


def dedup_table(docs: pd.DataFrame, params: MinHashParams, text_col: str = "text", id_col: str = "id",
                max_bucket_pairs: int = 2000) -> pd.DataFrame:
    """`docs` plus `dup_cluster` (the id its cluster keeps) and `keep`, from exact then near-dup dedup.

    Exact duplicates (equal after `normalise_text`) join their representative's near-dup cluster.
    """
    import pandas as pd

    from isoflop.curate.exact import exact_duplicates, text_hashes
    from isoflop.curate.near_dup import near_duplicates
    from isoflop.curate.normalise import normalise_text

    ids = docs[id_col].astype(str)
    normalised = pd.DataFrame({"id": ids.to_numpy(), "text": [normalise_text(t) for t in docs[text_col]]})
    exact = exact_duplicates([text_hashes(normalised)])
    exact_rep = dict(zip(exact["id"], exact["dup_cluster"]))
    survivors = normalised[~normalised["id"].isin(set(exact.loc[~exact["keep"], "id"]))]
    near = near_duplicates(survivors, params, max_bucket_pairs=max_bucket_pairs)
    near_rep = dict(zip(near["id"], near["dup_cluster"]))
    first = [exact_rep.get(i, i) for i in ids]
    cluster = [near_rep.get(rep, rep) for rep in first]
    out = docs.copy()
    out["dup_cluster"] = cluster
    out["keep"] = [c == i for c, i in zip(cluster, ids)]
    return out


def _run(args) -> int:
    import pandas as pd

    from isoflop.curate.minhash import MinHashParams, optimal_bands_rows

    path = Path(args.input)
    if not path.exists():
        raise UserError(f"input file not found: {path}")
    try:
        docs = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several types for a file that is not Parquet
        raise UserError(f"{path} is not a readable Parquet file: {err}") from None
    for col in (args.text_col, args.id_col):
        if col not in docs.columns:
            raise UserError(f"{path} has no column {col!r}; columns: {', '.join(map(str, docs.columns))}")
    if docs[args.id_col].duplicated().any():
        raise UserError(f"column {args.id_col!r} of {path} must hold unique ids")
    if (args.bands is None) != (args.rows is None):
        raise UserError("--bands and --rows go together (or leave both out to choose them from --threshold)")
    bands, rows = (args.bands, args.rows) if args.bands else optimal_bands_rows(args.threshold, args.num_perm, 0.7)
    try:
        params = MinHashParams(num_perm=args.num_perm, ngram=args.ngram, bands=bands, rows=rows,
                               threshold=args.threshold)
    except ValueError as err:
        raise UserError(str(err)) from None
    out = dedup_table(docs, params, args.text_col, args.id_col)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    out.to_parquet(args.out, index=False)
    removed = int((~out["keep"]).sum())
    print(f"{len(out)} documents, {removed} duplicates removed ({removed / max(len(out), 1):.1%}), "
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
    parser.set_defaults(func=_run)
