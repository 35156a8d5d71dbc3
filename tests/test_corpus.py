import json
from pathlib import Path

import pandas as pd
import pytest

from isoflop.config import validate_config
from isoflop.corpus import ingest, read_shards, shard_of
from isoflop.errors import UserError


def _corpus(sources, **extra):
    return validate_config({"corpus": {"stdlib": {"enabled": False}, "sources": sources, **extra}})["corpus"]


def test_jsonl_with_corrupt_lines_is_counted_not_fatal(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative source path: ids name it as the config writes it
    folder = Path("data")
    folder.mkdir()
    lines = [
        json.dumps({"text": "first document"}),
        "{not json",
        json.dumps({"body": "no text field"}),
        json.dumps({"text": "   "}),
        json.dumps({"text": "x" * 50}),
        json.dumps({"text": "second document"}),
    ]
    (folder / "a.jsonl").write_text("\n".join(lines) + "\n")
    cfg = _corpus([{"path": "data", "format": "jsonl", "domain": "web"}], max_doc_bytes=40)
    manifest = ingest(cfg, tmp_path / "out", progress=False)
    counts = manifest["sources"]["sources[0]:web"]
    assert (counts["docs_read"], counts["docs_kept"]) == (6, 2)
    assert (counts["corrupt"], counts["missing_text"], counts["empty"], counts["oversized"]) == (1, 1, 1, 1)
    assert counts["examples"]["corrupt"] == ["data/a.jsonl:2"] and counts["examples"]["missing_text"] == ["data/a.jsonl:3"]
    docs = read_shards(tmp_path / "out" / name for name in manifest["shards"])
    assert docs["id"].tolist() == ["web:data/a.jsonl:1", "web:data/a.jsonl:6"]
    assert docs["text"].tolist() == ["first document", "second document"]


def test_text_and_parquet_sources_and_undecodable_bytes(tmp_path):
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "good.txt").write_text("hello world")
    (texts / "bad.txt").write_bytes(b"caf\xe9 latin-1")
    (texts / "ignored.bin").write_bytes(b"\x00")
    table = tmp_path / "t.parquet"
    pd.DataFrame({"content": ["alpha", None, "beta"]}).to_parquet(table)
    cfg = _corpus(
        [
            {"path": str(texts), "format": "text", "domain": "notes"},
            {"path": str(table), "format": "parquet", "domain": "tab", "text_field": "content"},
        ],
        shards=5,
    )
    manifest = ingest(cfg, tmp_path / "out", progress=False)
    assert manifest["sources"]["sources[0]:notes"]["undecodable"] == 1
    assert manifest["sources"]["sources[1]:tab"]["missing_text"] == 1
    assert manifest["documents"] == 3 and len(manifest["shards"]) == 5  # some shards are empty, all exist
    assert manifest["by_domain"] == {"notes": {"documents": 1, "bytes": 11}, "tab": {"documents": 2, "bytes": 9}}


def test_missing_path_and_missing_column_name_the_key(tmp_path):
    with pytest.raises(UserError, match=r"corpus.sources\[0\].path"):
        ingest(_corpus([{"path": str(tmp_path / "nope"), "format": "text", "domain": "x"}]), tmp_path / "o")
    table = tmp_path / "t.parquet"
    pd.DataFrame({"body": ["a"]}).to_parquet(table)
    with pytest.raises(UserError) as err:
        ingest(_corpus([{"path": str(table), "format": "parquet", "domain": "x"}]), tmp_path / "o", progress=False)
    assert str(err.value) == (f"config key 'corpus.sources[0]' ({table}): the source yielded no documents "
                              f"(1 records read: 1 no_text_column (first at {table} (columns: body)))")


def test_stdlib_corpus_has_three_domains_and_is_reproducible(tmp_path):
    cfg = validate_config({"corpus": {"stdlib": {"max_docs_per_domain": 15}}})["corpus"]
    first = ingest(cfg, tmp_path / "a", progress=False)
    second = ingest(cfg, tmp_path / "b", progress=False)
    assert first["content_sha256"] == second["content_sha256"]
    assert first["sources"]["stdlib"]["docs_read"] == 45  # 15 per domain read; a few may be rejected
    kept = {d: e["documents"] for d, e in first["by_domain"].items()}
    assert sorted(kept) == ["code", "docs", "tests"] and all(12 <= n <= 15 for n in kept.values())
    docs = read_shards(tmp_path / "a" / name for name in first["shards"])
    assert docs["id"].str.startswith("tests:").sum() == kept["tests"]
    assert docs[docs.domain == "code"]["text"].str.contains("def |class |import |__all__").mean() > 0.9
    assert docs[docs.domain == "docs"]["id"].str.startswith("docs:").all()


def test_a_documents_shard_is_a_hash_of_its_id_alone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = Path("notes")
    folder.mkdir()
    for i in range(40):
        (folder / f"note{i:02d}.txt").write_text(f"note number {i}")
    source = {"path": "notes", "format": "text", "domain": "notes"}
    manifest = ingest(_corpus([source], shards=4), tmp_path / "all", progress=False)
    assert manifest["shards"] == [f"shard-0000{k}.parquet" for k in range(4)]
    shards = [read_shards([tmp_path / "all" / name])["id"].tolist() for name in manifest["shards"]]
    assert sorted(sum(shards, [])) == [f"notes:notes/note{i:02d}.txt" for i in range(40)]
    for k, ids in enumerate(shards):
        assert 0 < len(ids) < 20 and ids == sorted(ids)  # spread over the shards; (source, id) order inside
        assert all(shard_of(doc_id, 4) == k for doc_id in ids)
    # with every odd document gone, each remaining one stays in its shard
    for i in range(1, 40, 2):
        (folder / f"note{i:02d}.txt").unlink()
    fewer = ingest(_corpus([source], shards=4), tmp_path / "even", progress=False)
    for name, ids in zip(fewer["shards"], shards):
        assert read_shards([tmp_path / "even" / name])["id"].tolist() == [i for i in ids if int(i[-6:-4]) % 2 == 0]


def test_synthetic_source_is_seeded_and_has_its_true_entropy_rate(tmp_path):
    from isoflop.corpus.synthetic import entropy_rate

    cfg = validate_config({"corpus": {"stdlib": {"enabled": False},
                                      "synthetic": {"enabled": True, "documents": 5, "doc_chars": 300}}})["corpus"]
    first = ingest(cfg, tmp_path / "a", progress=False)
    assert first["content_sha256"] == ingest(cfg, tmp_path / "b", progress=False)["content_sha256"]
    assert first["by_domain"] == {"markov": {"documents": 5, "bytes": 1500}}
    docs = read_shards(sorted((tmp_path / "a").glob("shard-*.parquet")))
    assert set("".join(docs["text"])) <= set("abcdefghijklmnop")
    assert entropy_rate(cfg["synthetic"]) == pytest.approx(0.917, abs=0.001)
