"""Curation at scale: a generated corpus with planted duplicates through the real workflow on 2 cores.

    PYTHONPATH=$PWD/src .venv/bin/python bench/bench_curate_scale.py --mb 2200            # the 2 GB run
    PYTHONPATH=$PWD/src .venv/bin/python bench/bench_curate_scale.py --mb 200 --datatrove  # and datatrove

The corpus (`isoflop.curate.synthetic.planted_corpus`, seed 0: 5% of the originals with an exact copy,
half of those equal only after normalisation, 5% with a near copy at Jaccard 0.87-0.93) is written as
Parquet files under a temporary folder and read by the workflow as a `corpus.sources` entry; shards hold
about SHARD_MB of text each, so a larger corpus means more shards of the same size. The workflow's
`curate` target runs with every curation stage at its default; each job's peak RSS and CPU time come
from its Snakemake benchmark file. Planted duplicates are scored by family (an original and its copies,
recognised by text, since the ingest names documents by file and row): a removal by exact or near dedup
is right when the document it names as `duplicate_of` is of the same family. Precision = right removals /
removals; recall = right removals / planted copies.

`--datatrove` also runs datatrove's MinHash pipeline (bench/dedup_datatrove.py, one worker) on the same
documents, when it imports (see bench_dedup.py's docstring for the install outside the venv), and prints
docs/s per core of both. tests/test_scale.py (marker `scale`) runs this at two small sizes.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARD_MB = 64  # text per corpus shard: what a shard job holds
RSS_LIMIT_MB = 2048


def _digest(text: str) -> bytes:
    """Identifies a document by its normalised text (an exact copy has its original's)."""
    from isoflop.curate.normalise import normalise_text

    return hashlib.blake2b(normalise_text(text).encode("utf-8", "surrogatepass"), digest_size=16).digest()


def generate(folder: Path, target_mb: float, seed: int) -> dict:
    """Write the planted corpus to `folder` (one Parquet file per batch) until it holds `target_mb` of
    text; return its size and each document's family by text digest."""
    from isoflop.curate.synthetic import planted_corpus

    folder.mkdir(parents=True, exist_ok=True)
    family_of, planted, n_docs, n_bytes = {}, 0, 0, 0
    for index, (docs, labels) in enumerate(planted_corpus(10**9, seed, batch_originals=1000)):  # ~5 MB a file
        docs.to_parquet(folder / f"part-{index:05d}.parquet", index=False)
        source = dict(zip(labels["id"], labels["source"]))
        for doc_id, text in zip(docs["id"], docs["text"]):
            family_of[_digest(text)] = source.get(doc_id, doc_id)
        planted += len(labels)
        n_docs += len(docs)
        n_bytes += sum(len(t.encode()) for t in docs["text"])
        if n_bytes >= target_mb * 1e6:
            break
    return {"documents": n_docs, "bytes": n_bytes, "planted_copies": planted, "family_of": family_of}


def curate(corpus: Path, results: Path, shards: int, curate_cfg: dict, cores: int = 2, timeout_s: int = 7200) -> float:
    """Run the workflow's `curate` target on `corpus` into `results` (`curate_cfg`: the `curate:` keys that
    differ from the defaults); return its wall time."""
    config = {"study": "scale", "seed": 0, "curate": curate_cfg,
              "corpus": {"stdlib": {"enabled": False}, "shards": shards,
                         "sources": [{"path": str(corpus), "format": "parquet", "domain": "web"}]}}
    results.mkdir(parents=True, exist_ok=True)
    (results / "study.yaml").write_text(yaml.safe_dump(config))
    command = [str(Path(sys.executable).parent / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(results),
               "--configfile", str(results / "study.yaml"), "--cores", str(cores), "curate"]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s,
                          env={**os.environ, "ISOFLOP_PROGRESS": "0"})
    if done.returncode != 0:
        raise RuntimeError(f"the workflow failed:\n{done.stderr[-4000:]}")
    return time.perf_counter() - start


def job_table(results: Path) -> pd.DataFrame:
    """One row per job of the run: its name, wall seconds, peak RSS (MB) and CPU seconds (Snakemake benchmarks)."""
    rows = []
    benchmarks = results / "results" / "scale" / "benchmarks"
    for path in sorted(benchmarks.rglob("*.tsv")):
        with open(path) as handle:
            record = next(csv.DictReader(handle, delimiter="\t"))
        rows.append({"job": path.relative_to(benchmarks).with_suffix("").as_posix(), "s": float(record["s"]),
                     "max_rss_mb": float(record["max_rss"]), "cpu_s": float(record["cpu_time"])})
    return pd.DataFrame(rows)


def accuracy(results: Path, family_of: dict, planted: int) -> dict:
    """Precision and recall of the exact and near dedup removals against the planted families."""
    study = results / "results" / "scale"
    [corpus] = (study / "corpus").iterdir()
    [curating] = (study / "curating").iterdir()
    family = {}
    for shard in sorted(corpus.glob("shard-*.parquet")):
        table = pq.read_table(shard, columns=["id", "text"])
        family.update((doc_id, family_of.get(_digest(text)))
                      for doc_id, text in zip(table["id"].to_pylist(), table["text"].to_pylist()))
    removed = pd.read_parquet(curating / "dedup_removed.parquet")
    right = sum(family[doc] is not None and family[doc] == family[rep]
                for doc, rep in zip(removed["id"], removed["duplicate_of"]))
    by_stage = removed.groupby("stage").size().to_dict()
    return {"removed": len(removed), "removed_by_stage": {k: int(v) for k, v in by_stage.items()},
            "right": int(right), "planted_copies": planted,
            "precision": right / max(len(removed), 1), "recall": right / max(planted, 1)}


def datatrove_docs_per_s(corpus: Path) -> float | None:
    """datatrove's MinHash pipeline (one worker) over the same documents: docs/s, or None without datatrove."""
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import dedup_datatrove
    except ImportError:
        return None
    from bench_dedup import WORD, params_for

    params = params_for(0.8)
    table = pq.read_table(sorted(corpus.glob("*.parquet")), columns=["id", "text"])
    documents = dedup_datatrove.documents(table["id"].to_pylist(), table["text"].to_pylist())
    del table
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        dedup_datatrove.near_duplicates(documents, dedup_datatrove.minhash_config(5, params.bands, params.rows),
                                        WORD.pattern, Path(tmp))
        return len(documents) / (time.perf_counter() - start)


def run(target_mb: float, workdir: Path, seed: int = 0, with_datatrove: bool = False,
        shard_mb: float = SHARD_MB, curate_cfg: dict | None = None) -> dict:
    """Generate, curate, measure: the numbers the README and tests/test_scale.py report."""
    corpus = generate(workdir / "corpus", target_mb, seed)
    shards = max(1, math.ceil(corpus["bytes"] / (shard_mb * 1e6)))
    wall_s = curate(workdir / "corpus", workdir / "run", shards, curate_cfg or {})
    jobs = job_table(workdir / "run")
    curation = jobs[jobs["job"].str.startswith("curate/")]
    result = {"documents": corpus["documents"], "text_mb": corpus["bytes"] / 1e6,
              "shards": shards, "wall_s": wall_s,
              "jobs": jobs.to_dict("records"),
              "max_rss_mb_curation": float(curation["max_rss_mb"].max()),
              "max_rss_job": curation.loc[curation["max_rss_mb"].idxmax(), "job"],
              "corpus_job_rss_mb": float(jobs.loc[jobs["job"] == "corpus", "max_rss_mb"].max()),
              "curation_cpu_s": float(curation["cpu_s"].sum()),
              "docs_per_cpu_s": corpus["documents"] / float(curation["cpu_s"].sum()),
              **accuracy(workdir / "run", corpus["family_of"], corpus["planted_copies"])}
    if with_datatrove:
        result["datatrove_docs_per_s"] = datatrove_docs_per_s(workdir / "corpus")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=2200, help="text to generate, in MB (default 2200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shard-mb", type=float, default=SHARD_MB, help=f"text per shard (default {SHARD_MB})")
    parser.add_argument("--datatrove", action="store_true", help="also time datatrove's MinHash on the documents")
    parser.add_argument("--workdir", default=None, help="where the corpus and results go (default: a temp dir)")
    parser.add_argument("--json", default=None, help="also write the result here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        result = run(args.mb, Path(tmp), args.seed, args.datatrove, args.shard_mb)
    jobs = pd.DataFrame(result.pop("jobs"))
    print(jobs.round(2).to_string(index=False))
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps({**result, "jobs": jobs.to_dict("records")}, indent=2))
    print(f"\n{result['documents']} documents, {result['text_mb']:.0f} MB of text in {result['shards']} shards: "
          f"curated in {result['wall_s']:.0f} s on 2 cores; peak RSS of a curation job {result['max_rss_mb_curation']:.0f} MB "
          f"({result['max_rss_job']}; limit {RSS_LIMIT_MB}), of the ingest job {result['corpus_job_rss_mb']:.0f} MB; "
          f"precision {result['precision']:.4f}, recall {result['recall']:.4f}; "
          f"{result['docs_per_cpu_s']:.0f} docs/s per core over all curation jobs"
          + (f"; datatrove's MinHash alone {result['datatrove_docs_per_s']:.0f} docs/s on one core"
             if result.get("datatrove_docs_per_s") else ""))


if __name__ == "__main__":
    main()
