"""The ingest streams: rows are spilled to disk per shard as they are read and each shard is finalised on its
own, so its memory follows the largest shard, not the corpus; its outputs are those of the in-memory ingest
it replaced (hashes measured with that code) and do not depend on the spill buffer."""

import hashlib
import json
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from conftest import REPO
from isoflop.config import validate_config
from isoflop.corpus import SCRATCH_DIR, ingest
from isoflop.errors import UserError

sys.path.insert(0, str(REPO / "bench"))
from bench_ingest_memory import corpus_config, ingest_peak, ingest_process, write_corpus  # noqa: E402


def _user_files_corpus(shards: int) -> dict:
    """JSONL, Parquet and text sources (relative paths: run in a fresh folder) with defects, non-ASCII ids
    and texts, and a duplicate id: sources[1] reads web/part-1.jsonl again after sources[0] read it."""
    Path("web").mkdir()
    lines = [json.dumps({"text": f"web document {i} {'é' * (i % 3)} \u4e2d\u6587 \U0001f600"}) for i in range(12)]
    lines[3] = "{not json"
    lines[5] = json.dumps({"body": "no text"})
    lines[7] = json.dumps({"text": "   "})
    Path("web/part-0.jsonl").write_text("\n".join(lines) + "\n")
    Path("web/part-1.jsonl").write_bytes(b"".join(json.dumps({"text": f"part one line {i}"}).encode() + b"\n"
                                                  for i in range(9)) + b'{"text": "caf\xe9"}\n')
    Path("web/ünïcode-näme.jsonl").write_text(json.dumps({"text": "a file with a non-ASCII name"}) + "\n")
    Path("tables").mkdir()
    pd.DataFrame({"text": [f"table row {i}" if i % 4 else None for i in range(15)]}).to_parquet("tables/a.parquet")
    pd.DataFrame({"text": ["z" * 70, "short row"]}).to_parquet("tables/b.parquet")  # an oversized row
    Path("notes/sub").mkdir(parents=True)
    for i in range(8):
        Path(f"notes/note-{i}.txt").write_text(f"note {i}\n" * (i + 1))
    Path("notes/sub/latin1.txt").write_bytes(b"caf\xe9 latin-1")
    Path("notes/sub/blank.txt").write_text("  \n")
    Path("notes/sub/empty.txt").write_bytes(b"")
    sources = [{"path": "web/part-1.jsonl", "format": "jsonl", "domain": "web"},
               {"path": "web", "format": "jsonl", "domain": "web"},
               {"path": "tables", "format": "parquet", "domain": "tab"},
               {"path": "notes", "format": "text", "domain": "notes"}]
    return validate_config({"corpus": {"stdlib": {"enabled": False}, "sources": sources, "shards": shards,
                                       "max_doc_bytes": 64,
                                       "synthetic": {"enabled": True, "documents": 6, "doc_chars": 40}}})["corpus"]


def _digests(out: Path, manifest: dict) -> dict:
    """sha256 of every output file."""
    names = [*manifest["shards"], "manifest.json"]
    return {name: hashlib.sha256((out / name).read_bytes()).hexdigest() for name in names}


def _id_order(out: Path, manifest: dict) -> str:
    """A digest of every shard's ids in order (independent of the Parquet writer's version)."""
    order = [[name, pq.read_table(out / name)["id"].to_pylist()] for name in manifest["shards"]]
    return hashlib.sha256(json.dumps(order).encode()).hexdigest()


# Measured with the in-memory ingest this replaced (655ea86) on `_user_files_corpus`: its content hash,
# the sha256 of its manifest.json and the digest of its shards' id order. Every shard file was also
# byte-identical then, as it is for the default config's corpus (2482 documents).
IN_MEMORY_INGEST = {
    3: ("b1168806e388c212c8625899e4b3c6598b40642244cdf02dbc922fb78c72d9a1",
        "92c072ac0c0220a0302b77b41b84f2964b44824b45d6379f28cad96846d9efa0",
        "bd72a262e25a5a2f4f5f0e8e8bbca4518ad4fab9e3ea5fa5625ff30be94c99bc"),
    40: ("b1168806e388c212c8625899e4b3c6598b40642244cdf02dbc922fb78c72d9a1",
         "da54c549458f4f1a57a12b884b724f2746a4b7e55da470ac946d56521110221e",
         "904a2afec04bceadb01efd58e3aff4da8533f10f4bcd42dbe8ac8f25f221b742"),
}


@pytest.mark.parametrize("shards", [3, 40])  # 40: most shards empty
def test_outputs_are_those_of_the_in_memory_ingest_for_any_spill_buffer(tmp_path, monkeypatch, shards):
    monkeypatch.chdir(tmp_path)
    cfg = _user_files_corpus(shards)
    manifest = ingest(cfg, "out", progress=False)
    assert (manifest["documents"], manifest["by_domain"]["web"]) == (45, {"documents": 19, "bytes": 426})
    assert manifest["sources"]["sources[1]:web"]["duplicate_id"] == 9  # sources[0] read those first
    content, manifest_sha256, id_order = IN_MEMORY_INGEST[shards]
    assert manifest["content_sha256"] == content
    assert _digests(Path("out"), manifest)["manifest.json"] == manifest_sha256
    assert _id_order(Path("out"), manifest) == id_order
    assert sorted(path.name for path in Path("out").iterdir()) == sorted([*manifest["shards"], "manifest.json"])
    # a spill file per document, and runs merged two at a time (five levels at 40 shards): the same bytes
    tiny = ingest(cfg, "tiny", progress=False, spill_buffer_bytes=1, merge_fan_in=2)
    assert tiny == manifest and _digests(Path("tiny"), tiny) == _digests(Path("out"), manifest)


@pytest.mark.faults
def test_a_killed_ingest_leaves_only_whole_shards_and_its_rerun_is_unchanged(tmp_path):
    """SIGKILL while spilling and while writing shards: every shard file there is whole, and a rerun into the
    same folder (its scratch folder left behind) writes what an uninterrupted ingest writes."""
    write_corpus(tmp_path / "corpus", 16)
    cfg = corpus_config(tmp_path / "corpus", 6)
    clean = ingest_peak(cfg, tmp_path / "clean")["files"]
    scratch = tmp_path / "out" / SCRATCH_DIR
    for under_way in (lambda: any(scratch.glob("spill-*")), lambda: any((tmp_path / "out").glob("shard-*"))):
        child = ingest_process(cfg, tmp_path / "out")
        while not under_way() and child.poll() is None:
            time.sleep(0.002)
        child.kill()
        assert child.wait() != 0, "the ingest ended before the kill: make the corpus larger"
        assert scratch.is_dir()
        for shard in (tmp_path / "out").glob("shard-*"):
            pq.read_table(shard)  # whole: a half-written shard is only ever a hidden temporary file
    assert ingest_peak(cfg, tmp_path / "out")["files"] == clean
    assert not scratch.exists()


def test_a_source_that_yields_nothing_leaves_no_scratch(tmp_path):
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    cfg = validate_config({"corpus": {"stdlib": {"enabled": False}, "sources": [
        {"path": str(tmp_path / "bad.jsonl"), "format": "jsonl", "domain": "web"}]}})["corpus"]
    with pytest.raises(UserError, match="the source yielded no documents"):
        ingest(cfg, tmp_path / "out", progress=False)
    assert list((tmp_path / "out").iterdir()) == []


def test_peak_memory_follows_the_shard_not_the_corpus(tmp_path):
    """Five times the text in five times the shards of the same size, each ingest in a fresh process: the
    peak RSS (VmHWM) grows by under a third of the added text. The in-memory ingest grew by more than all
    of it (30 and 150 MB of text: 246 and 381 MB; the streaming one 214-224 MB at both, measured under load)."""
    peaks = {}
    for size_mb in (30, 150):
        write_corpus(tmp_path / f"corpus{size_mb}", size_mb)
        cfg = corpus_config(tmp_path / f"corpus{size_mb}", size_mb // 4)  # shards of about 4 MB of text
        peaks[size_mb] = ingest_peak(cfg, tmp_path / f"out{size_mb}")
    small, large = peaks[30], peaks[150]
    assert large["documents"] >= 4.5 * small["documents"]
    added_text_mb = (large["bytes"] - small["bytes"]) / 2**20
    assert large["max_rss_mb"] - small["max_rss_mb"] < added_text_mb / 3, (small, large)
