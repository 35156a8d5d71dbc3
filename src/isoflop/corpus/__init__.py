"""Corpus ingest: every source becomes rows (id, domain, source, text, n_bytes) in sharded Parquet.

A document's shard is a hash of its id alone (`shard_of`): the number of shards is a config value known
before any file is read, so the workflow's per-shard jobs form a static DAG, and no document's shard
depends on which other documents exist.

Sources are the embedded default (`stdlib`: the running Python's standard library, no download) and local
folders or files a user points to (`files`: JSONL, Parquet, plain text). Bad input never crashes the
ingest: every record that cannot become a document is counted per source under its defect (`DEFECTS`),
with the first few locations (file and line or row), in `manifest.json` and so in `curation.json`. A source
left with no document at all stops the study (a `UserError` naming its config key), before any training.

The ingest streams, so its memory follows the largest shard, not the corpus: rows are spilled to a scratch
folder inside the output folder as they are read (`SPILL_BUFFER_BYTES` of text at a time), then each shard
is read back, sorted and written on its own, with its ids and texts as a sorted run beside the spill; the
content hash k-way merges those runs a few rows of each at a time. Only the set of document ids seen (for
`duplicate_id`) grows with the corpus.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import shutil
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from isoflop.corpus import files, stdlib, synthetic
from isoflop.errors import UserError
from isoflop.workflow import atomic_write, write_json

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
SCRATCH_DIR = ".ingest-scratch"  # inside the output folder: cleared when an ingest starts, removed as it ends
# Memory bounds of the streaming ingest, not settings: no output depends on them (a test checks).
SPILL_BUFFER_BYTES = 8 * 2**20  # text held in memory before it is spilled
MERGE_FAN_IN = 64  # shards (or merged runs) the content hash reads at once
MERGE_BATCH_ROWS = 16  # rows of each of them in memory
SPILL_SCHEMA = pa.schema([("source_index", pa.int32()), *SCHEMA])  # the source's place in config order
# A shard's rows for the content hash, in its order: the Parquet shard's pages are too large to read many at once
RUN_SCHEMA = pa.schema([("source_index", pa.int32()), ("id", pa.binary()), ("text", pa.binary())])


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


def ingest(corpus_cfg: dict, out_dir: str | Path, *, progress: bool = True,
           spill_buffer_bytes: int = SPILL_BUFFER_BYTES, merge_fan_in: int = MERGE_FAN_IN) -> dict:
    """Read every source, write `corpus.shards` files `out_dir/shard-NNNNN.parquet` (some may be empty) and
    `out_dir/manifest.json`; return the manifest.

    Inside a shard, rows are ordered by (source order, document id), so shards are identical across reruns.
    Rows are spilled to disk as they are read (`_Spill`), then each shard is sorted and written on its own:
    memory follows the largest shard. `spill_buffer_bytes` and `merge_fan_in` bound memory and never change
    an output.
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    shards = [SHARD_FILE.format(shard=shard) for shard in shard_ids(corpus_cfg["shards"])]
    spill = _Spill(out_dir / SCRATCH_DIR, len(shards), spill_buffer_bytes)
    try:
        sources: dict[str, dict] = {}
        by_domain: dict[str, dict[str, int]] = {}
        seen_ids: set[str] = set()  # O(documents), but ids only: the first one in stream order wins
        for source_index, (name, key, docs) in enumerate(iter_sources(corpus_cfg)):
            counts = SourceCounts()
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
                spill.add(shard_of(doc.id, len(shards)), {"source_index": source_index, "id": doc.id,
                                                          "domain": doc.domain, "source": name, "text": text,
                                                          "n_bytes": n_bytes})
                counts.docs_kept += 1
                counts.bytes_kept += n_bytes
                domain = by_domain.setdefault(doc.domain, {"documents": 0, "bytes": 0})
                domain["documents"] += 1
                domain["bytes"] += n_bytes
            if not counts.docs_kept:
                raise UserError(f"{key}: the source yielded no documents ({_defect_summary(counts)})")
            sources[name] = counts.as_dict()
        del seen_ids  # before the shards are sorted
        spill.flush()
        runs = [spill.folder / f"run-{shard:05d}.arrow" for shard in range(len(shards))]
        for shard, (name, run) in enumerate(zip(shards, runs)):
            _write_shard(spill.rows_of(shard), out_dir / name, run)
        content_sha256 = _content_hash(runs, spill.folder, merge_fan_in)
    finally:
        shutil.rmtree(spill.folder, ignore_errors=True)
    manifest = {
        "documents": sum(counts["docs_kept"] for counts in sources.values()),
        "bytes": sum(counts["bytes_kept"] for counts in sources.values()),
        "by_domain": dict(sorted(by_domain.items())),
        "sources": sources,
        "shards": shards,
        "content_sha256": content_sha256,
    }
    write_json(out_dir / "manifest.json", manifest)
    return manifest


class _Spill:
    """Every shard's rows in stream order: held in memory until their text passes `buffer_bytes`, then written
    as one Arrow IPC file with a record batch per shard that has rows (few files, whatever the shard count)."""

    def __init__(self, folder: Path, n_shards: int, buffer_bytes: int):
        shutil.rmtree(folder, ignore_errors=True)  # left by a killed ingest
        folder.mkdir(parents=True)
        self.folder, self.buffer_bytes = folder, buffer_bytes
        self.pending: list[list[dict]] = [[] for _ in range(n_shards)]
        self.pending_bytes = 0
        self.files: list[tuple[Path, dict[int, int]]] = []  # (spill file, shard -> index of its batch there)

    def add(self, shard: int, row: dict) -> None:
        self.pending[shard].append(row)
        self.pending_bytes += row["n_bytes"]
        if self.pending_bytes >= self.buffer_bytes:
            self.flush()

    def flush(self) -> None:
        path, batch_of = self.folder / f"spill-{len(self.files):05d}.arrow", {}
        with pa.ipc.new_file(path, SPILL_SCHEMA) as writer:
            for shard, rows in enumerate(self.pending):
                if rows:
                    batch_of[shard] = len(batch_of)
                    writer.write_batch(pa.RecordBatch.from_pylist(rows, schema=SPILL_SCHEMA))
                    rows.clear()
        self.files.append((path, batch_of))
        self.pending_bytes = 0

    def rows_of(self, shard: int) -> pa.Table:
        """Every row spilled for `shard`, read into memory (not mapped: the pages would count as the job's)."""
        batches = []
        for path, batch_of in self.files:
            if shard in batch_of:
                with pa.OSFile(str(path)) as handle:
                    batches.append(pa.ipc.open_file(handle).get_batch(batch_of[shard]))
        return pa.Table.from_batches(batches, schema=SPILL_SCHEMA)


def _write_shard(rows: pa.Table, path: Path, run: Path) -> None:
    """Write a shard's rows ordered by (source order, id) to `path` (atomically), and their ids and texts as
    a sorted run for the content hash to `run`."""
    rows = rows.sort_by([("source_index", "ascending"), ("id", "ascending")])
    with pa.ipc.new_stream(run, RUN_SCHEMA) as writer:
        writer.write_table(rows.select(RUN_SCHEMA.names).cast(RUN_SCHEMA), max_chunksize=MERGE_BATCH_ROWS)
    table = rows.select(SCHEMA.names)
    del rows
    atomic_write(path, lambda handle: pq.write_table(table, handle))


def _content_hash(runs: list[Path], scratch: Path, fan_in: int) -> str:
    """sha256 of every row's id and text in (source order, id) order over all shards: a k-way merge of the
    shards' sorted runs, a batch of each in memory. Over `fan_in` runs, groups of them are first merged into
    longer runs, so that no more than `fan_in` files are read at once."""
    assert fan_in >= 2, "a merge of one run at a time never ends"
    for level in itertools.count():
        if len(runs) <= fan_in:
            break
        groups = [runs[start:start + fan_in] for start in range(0, len(runs), fan_in)]
        runs = [scratch / f"merge-{level}-{index:05d}.arrow" for index in range(len(groups))]
        for group, run in zip(groups, runs):
            with pa.ipc.new_stream(run, RUN_SCHEMA) as writer:
                rows = _merged(group)
                while batch := list(itertools.islice(rows, MERGE_BATCH_ROWS)):
                    writer.write_batch(pa.record_batch(list(zip(*batch)), schema=RUN_SCHEMA))
    digest = hashlib.sha256()
    for _, doc_id, text in _merged(runs):
        digest.update(doc_id + b"\0" + text + b"\0")
    return digest.hexdigest()


def _merged(runs: list[Path]) -> Iterator[tuple[int, bytes, bytes]]:
    """The (source index, id, text) rows of sorted runs, merged; id and text as UTF-8 bytes, which sort as
    their strings do."""

    def rows(path: Path) -> Iterator[tuple[int, bytes, bytes]]:
        with pa.OSFile(str(path)) as handle:
            for batch in pa.ipc.open_stream(handle):
                yield from zip(*(column.to_pylist() for column in batch.columns))

    return heapq.merge(*map(rows, runs))


def _defect_summary(counts: SourceCounts) -> str:
    """E.g. `3 records read: 2 corrupt (first at a.jsonl:1), 1 empty (first at b.jsonl)`."""
    parts = [f"{n} {reason} (first at {counts.examples[reason][0]})"
             for reason, n in counts.rejected.items() if n]
    return f"{counts.docs_read} records read" + (": " + ", ".join(parts) if parts else "")


def read_shards(paths: Iterable[str | Path]):
    """All rows of the given shards as one pandas DataFrame, in shard order."""
    import pandas as pd

    frames = [pq.read_table(path).to_pandas() for path in paths]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=SCHEMA.names)
