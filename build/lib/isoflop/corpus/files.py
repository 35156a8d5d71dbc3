"""User corpora from local files: JSONL (one object per line), Parquet tables, or plain-text files.

A folder is read recursively in sorted path order. Each record becomes a document of the source's domain
with a stable id `<domain>:<relative path>[:<line or row>]`. A JSON line that does not parse, or lacks the
text field, is yielded as a corrupt record (payload None) for the ingest to count; nothing raises.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from isoflop.errors import UserError

SUFFIXES = {"jsonl": (".jsonl", ".json"), "parquet": (".parquet",), "text": (".txt", ".md", ".text")}


def _files(source: dict, index: int) -> list[tuple[Path, str]]:
    root = Path(source["path"])
    if not root.exists():
        raise UserError(f"config key 'corpus.sources[{index}].path': {root} does not exist")
    if root.is_file():
        return [(root, root.name)]
    found = [p for p in sorted(root.rglob("*")) if p.is_file() and p.suffix.lower() in SUFFIXES[source["format"]]]
    if not found:
        raise UserError(
            f"config key 'corpus.sources[{index}].path': no {'/'.join(SUFFIXES[source['format']])} files in {root}"
        )
    return [(p, p.relative_to(root).as_posix()) for p in found]


def fingerprint(source: dict, index: int) -> list:
    """(relative path, size, mtime_ns) of every file the source reads: changes when any file changes."""
    return [[rel, p.stat().st_size, p.stat().st_mtime_ns] for p, rel in _files(source, index)]


def documents(source: dict, index: int) -> Iterator:
    from isoflop.corpus import RawDocument

    domain, field = source["domain"], source.get("text_field", "text")
    for path, rel in _files(source, index):
        base = f"{domain}:{rel}"
        if source["format"] == "text":
            yield RawDocument(base, domain, path.read_bytes(), str(path))
        elif source["format"] == "jsonl":
            yield from _jsonl(path, base, domain, field)
        else:
            yield from _parquet(path, base, domain, field, index)


def _jsonl(path: Path, base: str, domain: str, field: str) -> Iterator:
    from isoflop.corpus import RawDocument

    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            location = f"{path}:{number}"
            try:
                record = json.loads(line)
                text = record[field]
                if not isinstance(text, str):
                    raise TypeError(field)
            except (ValueError, KeyError, TypeError):
                yield RawDocument(f"{base}:{number}", domain, None, location)
                continue
            yield RawDocument(f"{base}:{number}", domain, text, location)


def _parquet(path: Path, base: str, domain: str, field: str, index: int) -> Iterator:
    import pyarrow.parquet as pq

    from isoflop.corpus import RawDocument

    parquet = pq.ParquetFile(path)
    if field not in parquet.schema_arrow.names:
        raise UserError(
            f"config key 'corpus.sources[{index}].text_field': column {field!r} not in {path} "
            f"(columns: {', '.join(parquet.schema_arrow.names)})"
        )
    row = 0
    for batch in parquet.iter_batches(columns=[field]):
        for text in batch.column(0).to_pylist():
            row += 1
            yield RawDocument(f"{base}:{row}", domain, text if isinstance(text, str) else None, f"{path} row {row}")
