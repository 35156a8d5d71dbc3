"""User corpora from local files: JSONL (one object per line), Parquet tables, or plain-text files.

A folder is read recursively in sorted path order. Each record becomes a document of the source's domain
with a stable id `<domain>:<source path>[/<relative path>][:<line or row>]`, the source path as the config
writes it: two sources of one domain may hold files of the same name.

Nothing here raises on a file's content: a record that cannot become a document is yielded with a `defect`
(see `isoflop.corpus.DEFECTS`) and its location, for the ingest to count. Symlinks inside a source folder
are never followed (a link may point outside the folder, at a system file, or at itself): each is a defect
of its own, `symlink_outside`, `symlink_loop` or `symlink_inside`. A source path that is itself a link is
the user's own choice and is read.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterator
from pathlib import Path

from isoflop.errors import UserError

SUFFIXES = {"jsonl": (".jsonl", ".json"), "parquet": (".parquet",), "text": (".txt", ".md", ".text")}
# Part of every user source's fingerprint: a change of the id scheme must give new corpus folders.
ID_SCHEME = "domain:source-path/relative-path"
BATCH_ROWS = 512  # Parquet rows decoded at once: the ingest's memory should not follow a user's row groups


def _walk(root: Path, suffixes: tuple[str, ...]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The files under `root` with one of `suffixes`, and every symlink or unreadable folder met with its
    defect, both in sorted path order. Links are judged, never entered, so a loop cannot trap the walk."""
    real_root = root.resolve()
    found, skipped = [], []

    def unreadable(err: OSError) -> None:
        skipped.append((Path(err.filename), "unreadable"))

    for folder, subfolders, names in os.walk(root, onerror=unreadable):  # never descends into linked folders
        for name in subfolders + names:
            path = Path(folder) / name
            if path.is_symlink():
                skipped.append((path, _link_defect(path, real_root)))
            elif name in names and path.suffix.lower() in suffixes and path.is_file():
                found.append(path)
    return sorted(found), sorted(skipped)


def _link_defect(link: Path, real_root: Path) -> str:
    try:
        target = link.resolve(strict=True)
    except RuntimeError:  # Python 3.11's pathlib reports a loop so
        return "symlink_loop"
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "symlink_loop"
        target = link.resolve()  # dangling: judge where it points
    return "symlink_inside" if target.is_relative_to(real_root) else "symlink_outside"


def _files(source: dict, index: int) -> tuple[list[tuple[Path, str]], list[tuple[Path, str]]]:
    """(file, id stem) of every file the source reads, and (path, defect) of every symlink or folder it skips."""
    root = Path(source["path"])
    stem = f"{source['domain']}:{root.as_posix()}"
    if not root.exists():
        raise UserError(f"config key 'corpus.sources[{index}].path': {root} does not exist")
    if root.is_file():
        return [(root, stem)], []
    suffixes = SUFFIXES[source["format"]]
    found, skipped = _walk(root, suffixes)
    if not found:
        note = f" ({len(skipped)} symlinks or unreadable folders skipped)" if skipped else ""
        raise UserError(f"config key 'corpus.sources[{index}].path': no {'/'.join(suffixes)} files in {root}{note}")
    return [(path, f"{stem}/{path.relative_to(root).as_posix()}") for path in found], skipped


def fingerprint(source: dict, index: int) -> dict:
    """Every file the source reads with its size and mtime_ns, and every path it skips: changes when any
    file changes. Cheap: no file is read."""
    found, skipped = _files(source, index)
    return {"ids": ID_SCHEME,
            "files": [[stem, path.stat().st_size, path.stat().st_mtime_ns] for path, stem in found],
            "skipped": [[str(path), defect] for path, defect in skipped]}


def documents(source: dict, index: int, max_bytes: int) -> Iterator:
    """Raw documents (and defects) of one configured source; a text file over `max_bytes` is not read."""
    from isoflop.corpus import RawDocument

    domain, field = source["domain"], source.get("text_field", "text")
    found, skipped = _files(source, index)
    for path, defect in skipped:
        yield RawDocument(f"{domain}:{path}", domain, None, str(path), defect)
    for path, stem in found:
        try:
            size = path.stat().st_size
            if size == 0:
                yield RawDocument(stem, domain, None, str(path), "empty")
            elif source["format"] == "text":
                too_big = size > max_bytes  # UTF-8 text is as many bytes as its file
                yield RawDocument(stem, domain, None if too_big else path.read_bytes(), str(path),
                                  "oversized" if too_big else None)
            elif source["format"] == "jsonl":
                yield from _jsonl(path, stem, domain, field)
            else:
                yield from _parquet(path, stem, domain, field)
        except OSError as err:  # unreadable (permissions, vanished, an I/O error): what was read stays
            yield RawDocument(stem, domain, None, f"{path} ({err.strerror or err})", "unreadable")


def _jsonl(path: Path, stem: str, domain: str, field: str) -> Iterator:
    from isoflop.corpus import RawDocument

    records = 0
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            records += 1
            doc_id, location = f"{stem}:{number}", f"{path}:{number}"
            try:
                record = json.loads(line.decode("utf-8"))
            except UnicodeDecodeError as err:
                yield RawDocument(doc_id, domain, None, f"{location} (byte {err.start})", "undecodable")
                continue
            except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
                yield RawDocument(doc_id, domain, None, location, "corrupt")
                continue
            text = record.get(field) if isinstance(record, dict) else None
            if isinstance(text, str):
                yield RawDocument(doc_id, domain, text, location)
            else:
                yield RawDocument(doc_id, domain, None, location, "missing_text" if isinstance(record, dict) else "corrupt")
    if not records:
        yield RawDocument(stem, domain, None, str(path), "empty")


def _parquet(path: Path, stem: str, domain: str, field: str) -> Iterator:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from isoflop.corpus import RawDocument

    row = 0
    try:
        parquet = pq.ParquetFile(path, pre_buffer=False, buffer_size=2**20)  # a page at a time, not a column
        columns = parquet.schema_arrow.names
        if field not in columns:
            yield RawDocument(stem, domain, None, f"{path} (columns: {', '.join(columns)})", "no_text_column")
            return
        for batch in parquet.iter_batches(columns=[field], batch_size=BATCH_ROWS):
            for text in batch.column(0).to_pylist():
                row += 1
                readable = isinstance(text, (str, bytes))
                yield RawDocument(f"{stem}:{row}", domain, text if readable else None, f"{path} row {row}",
                                  None if readable else "missing_text")
    except (pa.ArrowException, OSError) as err:  # a truncated or corrupt file: what was read stays
        reason = " ".join(str(err).split())[:200]
        yield RawDocument(f"{stem}:{row + 1}", domain, None, f"{path} after row {row} ({reason})", "unreadable")
