"""Curation as Snakemake shard jobs: the same curated folder for 1, 4 and 16 shards, equal to the in-memory
`curate_documents`, with injected exact and near duplicates removed; the report section drawn from it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from conftest import REPO
from isoflop.config import validate_config
from isoflop.corpus import ingest, read_shards
from isoflop.curate import curate_documents, curate_shards, split_validation
from isoflop.curate.minhash import exact_jaccard
from isoflop.curate.report import CLUSTER_MAP_FIGURE, S_CURVE_FIGURE, curation_section
from isoflop.curate.synthetic import edit_text

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
SEED = 7
EXACT_SOURCES, NEAR_SOURCES = (0, 1, 2), (3, 4, 5)


def _prose(rng: np.random.Generator, vocabulary: list[str], n_words: int) -> str:
    """Sentences of words drawn from `vocabulary`, a few sentences per line."""
    words = rng.choice(vocabulary, size=n_words)
    sentences = [" ".join(words[i:i + 12]).capitalize() + "." for i in range(0, n_words, 12)]
    return "\n".join(" ".join(sentences[i:i + 3]) for i in range(0, len(sentences), 3))


@pytest.fixture(scope="module")
def web_source(tmp_path_factory):
    """A JSONL source of 12 prose documents and, in a later file (so with larger ids), exact copies of
    documents 0-2 (one with CRLF line endings and trailing blanks: equal once normalised) and near copies of
    documents 3-5 (one word deleted). Document t draws its words from word groups t and t + 1, so every word
    is in two documents (TF-IDF keeps it) and no two documents are semantic duplicates."""
    folder = tmp_path_factory.mktemp("web")
    rng = np.random.default_rng(11)
    syllables = ["ka", "lo", "mi", "ren", "tas", "vo", "ple", "dun", "sir", "ma", "gel", "tor", "bi", "nu"]
    pool = sorted({"".join(rng.choice(syllables, size=rng.integers(2, 4))) for _ in range(900)})
    groups = [pool[30 * g: 30 * (g + 1)] for g in range(13)]
    originals = [_prose(rng, groups[t] + groups[t + 1], 300) for t in range(12)]
    exact = [originals[0], originals[1].replace("\n", "  \r\n") + " ", originals[2]]
    near = [edit_text(originals[i], "delete", 0.001, rng) for i in NEAR_SOURCES]
    # far above the LSH threshold, so a missed candidate pair is a one-in-a-million event
    assert all(0.95 < exact_jaccard(copy, originals[i], 5) < 1 for copy, i in zip(near, NEAR_SOURCES))
    (folder / "a_originals.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in originals))
    (folder / "b_copies.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in exact + near))
    stem = f"web:{folder.as_posix()}"  # ids name the source path as the config writes it
    return {
        "folder": folder,
        "originals": [f"{stem}/a_originals.jsonl:{i + 1}" for i in range(len(originals))],
        "exact_copies": [f"{stem}/b_copies.jsonl:{i + 1}" for i in range(len(exact))],
        "near_copies": [f"{stem}/b_copies.jsonl:{len(exact) + i + 1}" for i in range(len(near))],
    }


def _study_config(web_source, shards: int) -> dict:
    return {
        "study": "sharding",
        "seed": SEED,
        "corpus": {"stdlib": {"max_docs_per_domain": 40}, "shards": shards,
                   "sources": [{"path": str(web_source["folder"]), "format": "jsonl", "domain": "web"}]},
        "curate": {"cluster": {"n_clusters": 8}},
    }


def _snakemake(workdir: Path, configfile: Path, *args: str):
    command = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--configfile", str(configfile),
               "--cores", "2", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "ISOFLOP_PROGRESS": "0"})


@pytest.fixture(scope="module")
def workflow(web_source, tmp_path_factory):
    """curate(shards) -> (workdir, configfile, curated folder), made by the workflow's `curate` target once."""
    runs = {}

    def curate(shards: int):
        if shards not in runs:
            workdir = tmp_path_factory.mktemp(f"workflow{shards}")
            configfile = workdir / "study.yaml"
            configfile.write_text(yaml.safe_dump(_study_config(web_source, shards)))
            done = _snakemake(workdir, configfile, "curate")
            assert done.returncode == 0, done.stderr[-4000:]
            [folder] = (workdir / "results" / "sharding" / "curated").iterdir()
            runs[shards] = workdir, configfile, folder
        return runs[shards]

    return curate


def _documents(folder: Path) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(folder / f"{split}.parquet").assign(split=split) for split in ("train", "val")],
                     ignore_index=True).sort_values("id", ignore_index=True)


def _assert_same_curation(folder: Path, reference: Path) -> None:
    """Ids, splits, clusters, texts and byte counts alike, map coordinates up to float32 rounding (a matrix
    product's blocking depends on the batch), and the same report numbers."""
    pd.testing.assert_frame_equal(_documents(folder), _documents(reference), check_exact=False, rtol=0, atol=1e-5)
    report, expected = (json.loads((f / "curation.json").read_text()) for f in (folder, reference))
    assert report["curation"]["table"] == expected["curation"]["table"]
    assert report["split"] == expected["split"]
    stages, expected_stages = report["curation"]["stages"], expected["curation"]["stages"]
    for stage in ("quality", "exact_dedup", "near_dup", "cluster"):
        assert stages[stage] == expected_stages[stage], stage
    pairs, expected_pairs = (pd.DataFrame(s["semantic_dedup"]["examples"]) for s in (stages, expected_stages))
    pd.testing.assert_frame_equal(pairs, expected_pairs, check_exact=False, rtol=0, atol=1e-6)


def test_stage_functions_give_the_workflows_result_for_1_and_16_shards(workflow, web_source, tmp_path):
    """The rules' functions run in-process over 1 and 16 shards give what the workflow made from 4."""
    _, _, reference = workflow(4)
    for shards in (1, 16):
        config = validate_config(_study_config(web_source, shards))
        corpus = tmp_path / f"corpus{shards}"
        ingest(config["corpus"], corpus, progress=False)
        sizes = [len(pd.read_parquet(path)) for path in sorted(corpus.glob("shard-*.parquet"))]
        assert len(sizes) == shards and max(sizes) <= sum(sizes) / min(shards, 4)  # the shards are real
        (tmp_path / f"work{shards}").mkdir()
        _assert_same_curation(_curate_in_process(corpus, config, tmp_path / f"work{shards}"), reference)


@pytest.mark.slow
def test_workflow_gives_the_same_curation_for_1_4_16_shards(workflow):
    """As above through Snakemake itself: 57 jobs, mostly process starts (about 2 minutes on 2 cores)."""
    _, _, reference = workflow(4)
    for shards in (1, 16):
        _assert_same_curation(workflow(shards)[2], reference)


def test_duplicates_removed_and_originals_kept(workflow, web_source):
    _, _, folder = workflow(4)
    documents = _documents(folder)
    report = json.loads((folder / "curation.json").read_text())["curation"]
    kept = set(documents["id"])
    assert not kept & set(web_source["exact_copies"] + web_source["near_copies"])
    assert set(web_source["originals"]) <= kept
    web = {stage: report["stages"][stage]["per_domain"]["web"] for stage in ("quality", "exact_dedup", "near_dup")}
    assert (web["quality"]["docs_in"], web["quality"]["docs_out"]) == (18, 18)
    assert (web["exact_dedup"]["docs_out"], web["near_dup"]["docs_out"]) == (15, 12)
    assert report["stages"]["exact_dedup"]["examples"] == [
        {"id": copy, "duplicate_of": web_source["originals"][i]} for copy, i in zip(web_source["exact_copies"],
                                                                                    EXACT_SOURCES)]
    near_pairs = {(e["id"], e["duplicate_of"]) for e in report["stages"]["near_dup"]["examples"]}
    originals = web_source["originals"]
    assert near_pairs == {(copy, originals[i]) for copy, i in zip(web_source["near_copies"], NEAR_SOURCES)}
    assert documents["cluster"].nunique() == 8 and set(documents["split"]) == {"train", "val"}
    assert report["shards"] == 4


def test_sharded_workflow_equals_in_memory_curation(workflow):
    _, configfile, folder = workflow(4)
    config = validate_config(yaml.safe_load(configfile.read_text()))
    corpus = next((folder.parents[1] / "corpus").iterdir())
    docs = read_shards(sorted(corpus.glob("shard-*.parquet")))
    kept, _ = curate_documents(docs, config["curate"], seed=SEED)
    _, val = split_validation(kept, config["curate"]["val_fraction"], SEED)
    expected = kept[["id", "cluster"]].assign(split=np.where(kept["id"].isin(val["id"]), "val", "train"))
    sharded = _documents(folder)[["id", "cluster", "split"]]
    pd.testing.assert_frame_equal(sharded, expected.sort_values("id", ignore_index=True), check_dtype=False)


def test_rerun_has_nothing_to_do(workflow):
    workdir, configfile, _ = workflow(4)
    again = _snakemake(workdir, configfile, "curate", "-n")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


def test_curation_section_tables_pairs_and_figures(workflow, web_source, tmp_path):
    _, _, folder = workflow(4)
    lines = curation_section(json.loads((folder / "curation.json").read_text()), tmp_path / "figures", folder)
    text = "\n".join(lines)
    assert lines[0] == "## Curation"
    assert "| exact_dedup | web | 18 | 15 |" in text and "| near_dup | web | 15 | 12 |" in text
    for copy, i in zip(web_source["near_copies"], NEAR_SOURCES):
        assert f"- `{copy}` duplicates `{web_source['originals'][i]}` (estimated_jaccard 0." in text
    for name in (S_CURVE_FIGURE, CLUSTER_MAP_FIGURE):
        assert f"(figures/{name})" in text and (tmp_path / "figures" / name).stat().st_size > 10_000
    assert sum(line.startswith(f"| {c} | ") for c in range(8) for line in lines) == 8  # a row per cluster


def _curate_in_process(corpus_dir: Path, config: dict, work: Path) -> Path:
    """The curation rules' functions called in the order data.smk runs them (no Snakemake)."""
    curate_shards(sorted(corpus_dir.glob("shard-*.parquet")), corpus_dir / "manifest.json", config["curate"],
                  config["seed"], work, work / "curated")
    return work / "curated"


@pytest.mark.parametrize("shards, curate_cfg", [
    (48, {"cluster": {"method": "hierarchical_kmeans", "levels": [6], "n_clusters": 3, "balanced_sample": 60}}),
    (3, {"embed": {"enabled": False}}),
])
def test_balanced_sample_and_no_embeddings_match_in_memory(tmp_path, shards, curate_cfg):
    config = validate_config({"seed": SEED, "corpus": {"stdlib": {"max_docs_per_domain": 30}, "shards": shards},
                              "curate": curate_cfg})
    manifest = ingest(config["corpus"], tmp_path / "corpus", progress=False)
    empty = sum(pq.read_metadata(tmp_path / "corpus" / name).num_rows == 0 for name in manifest["shards"])
    assert (empty > 0) == (shards == 48)  # 48 shards for 90 documents: empty shards go through every step
    (tmp_path / "work").mkdir()
    folder = _curate_in_process(tmp_path / "corpus", config, tmp_path / "work")
    sharded = _documents(folder)
    kept, report = curate_documents(read_shards(sorted((tmp_path / "corpus").glob("shard-*.parquet"))),
                                    config["curate"], seed=SEED)
    curation = json.loads((folder / "curation.json").read_text())["curation"]
    if config["curate"]["embed"]["enabled"]:
        assert len(sharded) <= 60 and curation["stages"]["cluster"]["balanced_sample"] == 60
        pd.testing.assert_frame_equal(
            sharded[["id", "cluster", "cluster_level_0"]],
            kept[["id", "cluster", "cluster_level_0"]].sort_values("id", ignore_index=True), check_dtype=False)
    else:
        assert (sharded["cluster"] == 0).all() and "cluster" not in curation["stages"]
        assert sharded["id"].tolist() == sorted(kept["id"])
    assert curation["table"] == [{**row, "removal_rate": pytest.approx(row["removal_rate"])} for row in report["table"]]
