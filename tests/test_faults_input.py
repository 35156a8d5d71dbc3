"""Corpus defects are counted per source with file and line, never fatal unless a source yields nothing:
the cases of issue 12 in one set of folders, ingested directly (fast) and through Snakemake (`faults`)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO
from isoflop.config import validate_config
from isoflop.corpus import DEFECTS, ingest, read_shards
from isoflop.errors import UserError

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
TRACEBACK = "Traceback (most recent call last)"
FIFTY_MB = 50 * 2**20
TEXTS = "notes dir; $(touch {marker}) `touch {marker}` 'q\"&|"  # spaces and shell metacharacters


def _defects(tmp_path: Path, marker: Path) -> list[dict]:
    """Four sources holding every defect of the issue; relative paths (the test runs in tmp_path)."""
    for name in ("web1", "web2"):  # two sources of one domain, each with a part-0.jsonl
        Path(name).mkdir()
        Path(name, "part-0.jsonl").write_text(json.dumps({"text": f"a good document from {name}"}) + "\n")
    with open("web1/part-0.jsonl", "ab") as handle:
        handle.write(b"{not json\n")  # line 2: corrupt
        handle.write(json.dumps({"body": "no text field"}).encode() + b"\n")  # 3: missing_text
        handle.write(b'{"text": "deep", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n")  # 4: corrupt
        handle.write(b'{"text": "a lone \\ud800 surrogate"}\n')  # 5: undecodable (character 7)
        handle.write(b'{"text": "caf\xe9"}\n')  # 6: undecodable (byte 13)
        handle.write(json.dumps({"text": "y" * (FIFTY_MB + 1)}).encode() + b"\n")  # 7: oversized
    Path("web1/empty.jsonl").write_bytes(b"")  # empty

    Path("tables").mkdir()
    pd.DataFrame({"text": ["table row one", "table row two"]}).to_parquet("tables/good.parquet")
    whole = Path("tables/good.parquet").read_bytes()
    Path("tables/truncated.parquet").write_bytes(whole[: len(whole) // 2])  # unreadable
    pd.DataFrame({"body": ["no text column"]}).to_parquet("tables/nocol.parquet")  # no_text_column

    texts = Path(TEXTS.format(marker=marker))
    (texts / "sub").mkdir(parents=True)
    (texts / "a.txt").write_text("a note")
    (texts / "sub" / "b.txt").write_text("a note in a subfolder")
    (texts / "big.txt").write_bytes(b"z" * FIFTY_MB)  # oversized, and never read
    (texts / "empty.txt").write_bytes(b"")
    (texts / "outside.txt").symlink_to("/etc/hostname")  # symlink_outside
    (texts / "up").symlink_to("..")  # a folder link out of the source: symlink_outside
    (texts / "loop.txt").symlink_to("loop.txt")  # symlink_loop
    (texts / "again.txt").symlink_to("a.txt")  # symlink_inside
    return [{"path": "web1", "format": "jsonl", "domain": "web"},
            {"path": "web2", "format": "jsonl", "domain": "web"},
            {"path": "tables", "format": "parquet", "domain": "tab"},
            {"path": str(texts), "format": "text", "domain": "notes"}]


def _counts(**defects) -> dict:
    return {reason: defects.get(reason, 0) for reason in DEFECTS}


def _expected(texts: str) -> dict:
    """(records read, documents kept, every defect count, first locations) of each source."""
    return {
        "sources[0]:web": ((8, 1), _counts(corrupt=2, missing_text=1, undecodable=2, oversized=1, empty=1),
                           {"corrupt": ["web1/part-0.jsonl:2", "web1/part-0.jsonl:4"],
                            "missing_text": ["web1/part-0.jsonl:3"],
                            "undecodable": ["web1/part-0.jsonl:5 (character 7)", "web1/part-0.jsonl:6 (byte 13)"],
                            "oversized": ["web1/part-0.jsonl:7"], "empty": ["web1/empty.jsonl"]}),
        "sources[1]:web": ((1, 1), _counts(), {}),
        "sources[2]:tab": ((4, 2), _counts(no_text_column=1, unreadable=1),
                           {"no_text_column": ["tables/nocol.parquet (columns: body)"],
                            "unreadable": ["tables/truncated.parquet after row 0 (Parquet magic bytes not found in "
                                           "footer. Either the file is corrupted or this is not a parquet file.)"]}),
        "sources[3]:notes": ((8, 2), _counts(symlink_outside=2, symlink_loop=1, symlink_inside=1, oversized=1,
                                             empty=1),
                             {"symlink_inside": [f"{texts}/again.txt"], "symlink_loop": [f"{texts}/loop.txt"],
                              "symlink_outside": [f"{texts}/outside.txt", f"{texts}/up"],
                              "oversized": [f"{texts}/big.txt"], "empty": [f"{texts}/empty.txt"]}),
    }


def _assert_counts(sources: dict, texts: str) -> None:
    for name, ((read, kept), defects, examples) in _expected(texts).items():
        counts = sources[name]
        assert (counts["docs_read"], counts["docs_kept"]) == (read, kept), name
        assert {reason: counts[reason] for reason in DEFECTS} == defects, name
        assert counts["examples"] == examples, name


@pytest.mark.faults
def test_every_defect_is_counted_per_source_with_its_location(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "pwned"
    sources = _defects(tmp_path, marker)
    corpus = validate_config({"corpus": {"stdlib": {"enabled": False}, "sources": sources,
                                         "max_doc_bytes": 2_000_000}})["corpus"]
    manifest = ingest(corpus, tmp_path / "out", progress=False)
    _assert_counts(manifest["sources"], sources[3]["path"])
    docs = read_shards(tmp_path / "out" / name for name in manifest["shards"])
    texts = sources[3]["path"]
    assert sorted(docs["id"]) == sorted([  # ids name the source path: the two part-0.jsonl are distinct
        "web:web1/part-0.jsonl:1", "web:web2/part-0.jsonl:1", "tab:tables/good.parquet:1",
        "tab:tables/good.parquet:2", f"notes:{texts}/a.txt", f"notes:{texts}/sub/b.txt"])
    assert not docs["text"].str.contains(open("/etc/hostname").read().strip(), regex=False).any()
    assert not marker.exists()


def test_a_source_that_yields_nothing_is_refused_naming_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("bad").mkdir()
    Path("bad/a.jsonl").write_text("{not json\n" + json.dumps({"body": "x"}) + "\n")
    corpus = validate_config({"corpus": {"stdlib": {"enabled": False},
                                         "sources": [{"path": "bad", "format": "jsonl", "domain": "web"}]}})["corpus"]
    with pytest.raises(UserError) as err:
        ingest(corpus, tmp_path / "out", progress=False)
    assert str(err.value) == ("config key 'corpus.sources[0]' (bad): the source yielded no documents (2 records "
                              "read: 1 corrupt (first at bad/a.jsonl:1), 1 missing_text (first at bad/a.jsonl:2))")


@pytest.mark.faults
def test_stdlib_ids_are_unchanged_by_the_source_path_ids(tmp_path):
    """The embedded corpus keeps its ids, `<domain>:<path in the stdlib>` (the default study's splits and
    run ids stay as they were: its runs.parquet and curation were compared before and after)."""
    from isoflop.corpus.stdlib import stdlib_dir

    corpus = validate_config({"corpus": {"stdlib": {"max_docs_per_domain": 3}}})["corpus"]
    manifest = ingest(corpus, tmp_path / "out", progress=False)
    ids = read_shards(tmp_path / "out" / name for name in manifest["shards"])["id"]
    files = [doc_id.split(":", 1) for doc_id in ids if not doc_id.startswith("docs:topic:")]
    assert len(files) >= 6 and all((stdlib_dir() / rel).is_file() for _, rel in files)


def _snakemake(workdir: Path, config: dict, *targets: str) -> subprocess.CompletedProcess:
    configfile = workdir / "study.yaml"
    configfile.write_text(yaml.safe_dump(config))
    return subprocess.run([SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--configfile",
                           str(configfile), "--cores", "2", *targets], capture_output=True, text=True, cwd=workdir,
                          env={**os.environ, "ISOFLOP_PROGRESS": "0"}, timeout=900)


TINY = {
    "study": "defects",
    "corpus": {"stdlib": {"max_docs_per_domain": 10}, "shards": 2},
    "curate": {"embed": {"enabled": False}, "semantic_dedup": {"enabled": False}},
    "tracking": {"enabled": False},
}


@pytest.mark.faults
def test_the_study_goes_on_with_every_defect_counted_in_curation_json(tmp_path, monkeypatch):
    """Through Snakemake, in a results folder whose name carries shell metacharacters too: curation
    finishes, curation.json and the report's section count every defect, nothing reaches a shell."""
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "pwned"
    sources = _defects(tmp_path, marker)
    results_dir = f"results dir; $(touch {marker}) `touch {marker}`"
    done = _snakemake(tmp_path, {**TINY, "results_dir": results_dir, "corpus": {**TINY["corpus"], "sources": sources}},
                      "--until", "curate")
    assert done.returncode == 0, done.stderr[-3000:]
    assert TRACEBACK not in done.stderr
    [curation] = (tmp_path / results_dir / "defects" / "curated").glob("*/curation.json")
    summary = json.loads(curation.read_text())
    _assert_counts(summary["ingest"]["sources"], sources[3]["path"])
    assert summary["ingest"]["by_domain"]["web"]["documents"] == 2
    assert not marker.exists()

    from isoflop.curate.report import curation_section

    lines = curation_section(summary, tmp_path / "figures", curation.parent)
    assert "| sources[0]:web | corrupt | 2 | `web1/part-0.jsonl:2` |" in lines
    assert f"| sources[3]:notes | symlink_outside | 2 | `{sources[3]['path']}/outside.txt` |" in lines


@pytest.mark.faults
def test_a_source_that_yields_nothing_stops_the_study_in_one_line(tmp_path):
    Path(tmp_path, "bad").mkdir()
    Path(tmp_path, "bad", "a.jsonl").write_text("{not json\n")
    config = {**TINY, "corpus": {"stdlib": {"enabled": False},
                                 "sources": [{"path": "bad", "format": "jsonl", "domain": "web"}]}}
    done = _snakemake(tmp_path, config)
    assert done.returncode == 1
    assert ("isoflop corpus: error: config key 'corpus.sources[0]' (bad): the source yielded no documents "
            "(1 records read: 1 corrupt (first at bad/a.jsonl:1)) (log: results/defects/logs/corpus.log)"
            ) in done.stderr.splitlines()
    assert "Error in rule corpus" in done.stderr  # Snakemake marks the job failed
    assert TRACEBACK not in done.stderr
    assert not (tmp_path / "results" / "defects" / "runs").exists()  # stopped before training


@pytest.mark.faults
@pytest.mark.parametrize("embed, line", [
    (True, "isoflop curate/fit: error: no document is left to embed after quality and dedup; loosen curate.quality "
           "or set curate.embed.enabled: false (log: results/defects/logs/curate/fit.log)"),
    (False, "isoflop tokenize: error: curation left no training document of the 2 ingested (see "
            "results/defects/curated/{curated}/curation.json); loosen curate.quality or add documents to the corpus "
            "(log: results/defects/logs/tokenize.log)"),
])
def test_a_corpus_emptied_by_curation_stops_before_training_in_one_line(tmp_path, embed, line):
    Path(tmp_path, "tiny").mkdir()
    Path(tmp_path, "tiny", "a.jsonl").write_text('{"text": "x"}\n{"text": "y y"}\n')  # both fail the quality rules
    config = {**TINY, "corpus": {"stdlib": {"enabled": False}, "shards": 1,
                                 "sources": [{"path": "tiny", "format": "jsonl", "domain": "web"}]},
              "curate": {"embed": {"enabled": embed}, "semantic_dedup": {"enabled": embed}}}
    done = _snakemake(tmp_path, config)
    assert done.returncode == 1 and TRACEBACK not in done.stderr
    curated = [folder.name for folder in (tmp_path / "results" / "defects" / "curated").glob("*")]
    assert line.format(curated=curated[0] if curated else None) in done.stderr.splitlines()
    assert not (tmp_path / "results" / "defects" / "runs").exists()
