"""Corpus ingest: every source becomes rows (id, domain, source, text, n_bytes) in sharded Parquet.

A document's shard is a hash of its id alone (`shard_of`): the number of shards is a config value known
before any file is read, so the workflow's per-shard jobs form a static DAG, and no document's shard
depends on which other documents exist.

Sources are the embedded default (`stdlib`: the running Python's standard library, no download) and local
folders or files a user points to (`files`: JSONL, Parquet, plain text). Bad input never crashes the
ingest: every record that cannot become a document is counted per source under its defect (`DEFECTS`),
with the first few locations (file and line or row), in `manifest.json` and so in `curation.json`. A source
left with no document at all stops the study (a `UserError` naming its config key), before any training.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from isoflop.corpus import files, stdlib, synthetic
from isoflop.errors import UserError

SCHEMA = pa.schema(
    [("id", pa.string()), ("domain", pa.string()), ("source", pa.string()), ("text", pa.string()),
     ("n_bytes", pa.int64())]
)
EXAMPLES_KEPT = 5
# Why a record is not a document. Sources report the first six themselves; the ingest finds the rest.
DEFECTS = {
    "corrupt": "a JSON line that does not parse (or nests past the parser's depth), or is not an object",
    "missing_text": "a JSON object without the text field, or a row whose text is null or not a string",
    "no_text_column": "a Parquet file without the text column",
    "unreadable": "a file or folder that cannot be read to its end (a truncated Parquet file, no permission)",
    "symlink_outside": "a symlink in a source folder pointing outside it (not followed)",
    "symlink_loop": "a symlink that resolves to itself (not followed)",
    "symlink_inside": "a symlink to somewhere inside the folder (not followed; the target is read where it is)",
    "undecodable": "bytes that are not UTF-8, or text with a lone UTF-16 surrogate",
    "empty": "an empty file, or a document of whitespace only",
    "oversized": "a document longer than corpus.max_doc_bytes (skipped, not truncated)",
    "duplicate_id": "a document whose id an earlier one has (the same file read twice by one domain)",
}
SHARD_FILE = "shard-{shard}.parquet"  # {shard}: one of `shard_ids`


@dataclass
class RawDocument:
    """A document as a source yields it: raw bytes are decoded (and counted) by the ingest, not the source."""

    id: str
    domain: str
    payload: bytes | str | None  # None with a defect
    location: str  # file[:line], for error reports
    defect: str | None = None  # a key of DEFECTS when the source could not make a document of this record


@dataclass
class SourceCounts:
    """Records read and documents kept, and a count of every defect of `DEFECTS` (zero included)."""

    docs_read: int = 0
    docs_kept: int = 0
    bytes_kept: int = 0
    rejected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DEFECTS, 0))
    examples: dict[str, list[str]] = field(default_factory=dict)

    def reject(self, reason: str, location: str) -> None:
        self.rejected[reason] += 1
        kept = self.examples.setdefault(reason, [])
        if len(kept) < EXAMPLES_KEPT:
            kept.append(location)

    def as_dict(self) -> dict:
        return {"docs_read": self.docs_read, "docs_kept": self.docs_kept, "bytes_kept": self.bytes_kept,
                **self.rejected, "examples": self.examples}


def iter_sources(corpus_cfg: dict) -> Iterator[tuple[str, str, Iterable[RawDocument]]]:
    """(source name, its config key as a message names it, its documents) for every configured source, in
    config order."""
    if corpus_cfg["stdlib"]["enabled"]:
        yield "stdlib", "config key 'corpus.stdlib'", stdlib.documents(corpus_cfg["stdlib"])
    if corpus_cfg["synthetic"]["enabled"]:
        yield "synthetic", "config key 'corpus.synthetic'", synthetic.documents(corpus_cfg["synthetic"])
    for index, source in enumerate(corpus_cfg["sources"]):
        yield (f"sources[{index}]:{source['domain']}", f"config key 'corpus.sources[{index}]' ({source['path']})",
               files.documents(source, index, corpus_cfg["max_doc_bytes"]))


def fingerprint(corpus_cfg: dict) -> dict:
    """What the corpus content depends on beyond the config: Python's version for the embedded corpus,
    each user file's path, size and modification time. Cheap: no file is read."""
    parts: dict = {}
    if corpus_cfg["stdlib"]["enabled"]:
        parts["stdlib"] = {"python": sys.version, "path": stdlib.stdlib_dir().as_posix()}
    for index, source in enumerate(corpus_cfg["sources"]):
        parts[f"sources[{index}]"] = files.fingerprint(source, index)
    return parts


def _decode(doc: RawDocument, max_bytes: int, counts: SourceCounts) -> tuple[str, int] | None:
    """The document's text and its UTF-8 size, or None (counted) when it is not a document."""
    if doc.defect:
        counts.reject(doc.defect, doc.location)
        return None
    try:
        text = doc.payload.decode("utf-8") if isinstance(doc.payload, bytes) else doc.payload
        n_bytes = len(text.encode("utf-8"))  # a JSON string may hold a lone surrogate: no UTF-8 for it
    except UnicodeError as err:
        what = "byte" if isinstance(err, UnicodeDecodeError) else "character"
        counts.reject("undecodable", f"{doc.location} ({what} {err.start})")
        return None
    if not text.strip():
        counts.reject("empty", doc.location)
        return None
    if n_bytes > max_bytes:
        counts.reject("oversized", doc.location)
        return None
    return text, n_bytes


def shard_of(doc_id: str, n_shards: int) -> int:
    """The shard (0 .. n_shards - 1) of a document: a hash of its id, independent of every other document."""
    return int.from_bytes(hashlib.blake2b(doc_id.encode(), digest_size=8).digest(), "big") % n_shards


def shard_ids(n_shards: int) -> list[str]:
    """The ids of `n_shards` shards in order ("00000", "00001", ...): the workflow's `{shard}` wildcard."""
    return [f"{index:05d}" for index in range(n_shards)]


def ingest(corpus_cfg: dict, out_dir: str | Path, *, progress: bool = True) -> dict:
    """Read every source, write `corpus.shards` files `out_dir/shard-NNNNN.parquet` (some may be empty) and
    `out_dir/manifest.json`; return the manifest.

    Inside a shard, rows are ordered by (source order, document id), so shards are identical across reruns.
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    sources: dict[str, dict] = {}
    seen_ids: set[str] = set()
    for name, key, docs in iter_sources(corpus_cfg):
        counts = SourceCounts()
        kept: list[dict] = []
        for doc in tqdm(docs, desc=f"ingest {name}", unit="doc", disable=not progress, mininterval=1):
            counts.docs_read += 1
            decoded = _decode(doc, corpus_cfg["max_doc_bytes"], counts)
            if decoded is None:
                continue
            if doc.id in seen_ids:
                counts.reject("duplicate_id", f"{doc.location} (id {doc.id})")
                continue
            seen_ids.add(doc.id)
            text, n_bytes = decoded
            kept.append({"id": doc.id, "domain": doc.domain, "source": name, "text": text, "n_bytes": n_bytes})
            counts.docs_kept += 1
            counts.bytes_kept += n_bytes
        if not kept:
            raise UserError(f"{key}: the source yielded no documents ({_defect_summary(counts)})")
        kept.sort(key=lambda row: row["id"])
        rows.extend(kept)
        sources[name] = counts.as_dict()
    shards = [SHARD_FILE.format(shard=shard) for shard in shard_ids(corpus_cfg["shards"])]
    members: list[list[dict]] = [[] for _ in shards]
    for row in rows:
        members[shard_of(row["id"], len(shards))].append(row)
    for name, shard_rows in zip(shards, members):
        pq.write_table(pa.Table.from_pylist(shard_rows, schema=SCHEMA), out_dir / name)
    manifest = {
        "documents": len(rows),
        "bytes": sum(row["n_bytes"] for row in rows),
        "by_domain": _by_domain(rows),
        "sources": sources,
        "shards": shards,
        "content_sha256": _content_hash(rows),
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _defect_summary(counts: SourceCounts) -> str:
    """E.g. `3 records read: 2 corrupt (first at a.jsonl:1), 1 empty (first at b.jsonl)`."""
    parts = [f"{n} {reason} (first at {counts.examples[reason][0]})"
             for reason, n in counts.rejected.items() if n]
    return f"{counts.docs_read} records read" + (": " + ", ".join(parts) if parts else "")


def _by_domain(rows: list[dict]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for row in rows:
        entry = out.setdefault(row["domain"], {"documents": 0, "bytes": 0})
        entry["documents"] += 1
        entry["bytes"] += row["n_bytes"]
    return dict(sorted(out.items()))


def _content_hash(rows: list[dict]) -> str:
    digest = hashlib.sha256()
    for row in rows:
        digest.update(row["id"].encode() + b"\0" + row["text"].encode() + b"\0")
    return digest.hexdigest()


def read_shards(paths: Iterable[str | Path]):
    """All rows of the given shards as one pandas DataFrame, in shard order."""
    import pandas as pd

    frames = [pq.read_table(path).to_pandas() for path in paths]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=SCHEMA.names)
