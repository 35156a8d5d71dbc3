"""Near-duplicate dedup benchmarks: accuracy on labelled copies, throughput against datasketch, gather memory.

    .venv/bin/python bench/bench_dedup.py accuracy     # precision / recall / F1 vs edit rate and threshold
    .venv/bin/python bench/bench_dedup.py throughput   # docs/s and peak memory, isoflop vs datasketch
    .venv/bin/python bench/bench_dedup.py memory       # gather peak memory: default corpus vs 10x
    .venv/bin/python bench/bench_dedup.py cli          # `isoflop dedup` end to end vs datasketch's MinHash+LSH

Corpus: the embedded default (the Python standard library, `isoflop.corpus.stdlib`). Every comparison
runs in the same command; each measured system runs in a fresh subprocess so peak RSS is its own.

`throughput` also runs datatrove's MinHash pipeline (signature -> buckets -> cluster -> filter, set up
like isoflop's stage in bench/dedup_datatrove.py) when datatrove imports, and otherwise says it skipped
it. datatrove is no dependency of isoflop; install it outside the venv, with what its MinHash step
imports beyond the venv (regex; xxhash < 4, its default shingle hash), and put it on the path:

    .venv/bin/pip install --no-deps --target /tmp/dtsite datatrove==0.10.1 dill humanize loguru multiprocess regex "xxhash<4"
    PYTHONPATH=/tmp/dtsite .venv/bin/python bench/bench_dedup.py throughput
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from isoflop.corpus import stdlib
from isoflop.curate.minhash import MinHashParams, optimal_bands_rows
from isoflop.curate.near_dup import near_duplicate_clusters, near_duplicates, signatures_for_shard
from isoflop.curate.synthetic import EDIT_KINDS, edit_text, inject_near_duplicates

NGRAM, NUM_PERM = 5, 128
WORD = re.compile(r"[0-9a-z_\u0080-\U0010ffff]+")
WORD_OR_UPPER = re.compile(r"[0-9A-Za-z_\u0080-\U0010ffff]+")


def default_corpus() -> pd.DataFrame:
    """The embedded corpus, all domains, decoded as the ingest does."""
    rows = []
    for doc in stdlib.documents({"domains": ["code", "tests", "docs"], "max_docs_per_domain": None}):
        text = doc.payload.decode("utf-8", "replace") if isinstance(doc.payload, bytes) else doc.payload
        rows.append({"id": doc.id, "domain": doc.domain, "text": text})
    return pd.DataFrame(rows)


def params_for(threshold: float) -> MinHashParams:
    bands, rows = optimal_bands_rows(threshold, NUM_PERM, 0.7)
    return MinHashParams(num_perm=NUM_PERM, ngram=NGRAM, bands=bands, rows=rows, threshold=threshold)


# ---------------------------------------------------------------- accuracy

def _dissimilar_sources(docs: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """`n` documents with no near duplicate among them (J < 0.3), so every true pair is a planted one."""
    sample = docs.sample(n=min(3 * n, len(docs)), random_state=seed)
    sample = sample[sample["text"].str.len() > 200]
    clustered = set(near_duplicates(sample, params_for(0.3))["id"])
    return sample[~sample["id"].isin(clustered)].head(n).reset_index(drop=True)


def _pair_scores(clusters: dict, labels: pd.DataFrame, truth: pd.Series, families: dict) -> dict:
    """Precision, recall, F1 of (copy, source) pairs; merges across families count as false positives."""
    same = np.array([clusters.get(c, c) == clusters.get(s, s) for c, s in zip(labels["id"], labels["source"])])
    tp, fn = int((same & truth).sum()), int((~same & truth).sum())
    fp = int((same & ~truth).sum())
    by_cluster: dict = {}
    for doc, cluster in clusters.items():
        by_cluster.setdefault(cluster, set()).add(families.get(doc, doc))
    fp += sum(len(f) - 1 for f in by_cluster.values())  # each extra family merged in is a wrong pair
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1}


def accuracy(n_sources: int, n_copies: int, seed: int) -> None:
    docs = default_corpus()
    sources = _dissimilar_sources(docs, n_sources, seed)
    rates = [0.01, 0.02, 0.05, 0.1, 0.2, 0.3]
    corpus, labels = inject_near_duplicates(sources, n_copies, rates, seed, ngram=NGRAM)
    families = dict(zip(labels["id"], labels["source"]))
    print(f"{len(sources)} dissimilar sources from the embedded corpus, {len(labels)} edited copies "
          f"({', '.join(EDIT_KINDS)}; rates {rates})\n")

    print("True Jaccard of the copies (median by kind and rate):")
    print(labels.pivot_table(index="kind", columns="rate", values="jaccard", aggfunc="median").round(3).to_string())

    rows = []
    for threshold in (0.7, 0.8, 0.9):
        table = near_duplicates(corpus, params_for(threshold))
        clusters = dict(zip(table["id"], table["dup_cluster"]))
        truth = labels["jaccard"] >= threshold
        overall = _pair_scores(clusters, labels, truth, families)
        rows.append({"threshold": threshold, "rate": "all", **overall})
        for rate in rates:
            pick = labels["rate"] == rate
            # per rate: only the copy-source pairs of that rate (cross-family merges reported under "all")
            same = np.array([clusters.get(c, c) == clusters.get(s, s)
                             for c, s in zip(labels.loc[pick, "id"], labels.loc[pick, "source"])])
            t = truth[pick].to_numpy()
            tp, fp, fn = int((same & t).sum()), int((same & ~t).sum()), int((~same & t).sum())
            p = tp / (tp + fp) if tp + fp else 1.0
            r = tp / (tp + fn) if tp + fn else 1.0
            rows.append({"threshold": threshold, "rate": rate, "tp": tp, "fp": fp, "fn": fn, "precision": p,
                         "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0})
    print("\nPairs (copy, source); truth: exact Jaccard >= threshold:")
    print(pd.DataFrame(rows).round(3).to_string(index=False))

    # Headline: at the default threshold, copies within J >= 0.85 of their source; truth = same family.
    close = labels[labels["jaccard"] >= 0.85]
    subset = corpus[corpus["id"].isin(set(sources["id"]) | set(close["id"]))]
    table = near_duplicates(subset, params_for(0.8))
    clusters = dict(zip(table["id"], table["dup_cluster"]))
    score = _pair_scores(clusters, close, pd.Series(True, index=close.index), families)
    print(f"\nHeadline (threshold 0.8; {len(close)} copies with J >= 0.85 to their source, {len(sources)} sources): "
          f"precision {score['precision']:.3f}, recall {score['recall']:.3f}, F1 {score['f1']:.3f}")


# ---------------------------------------------------------------- throughput

def _shingles(text: str) -> list[bytes]:
    words = WORD.findall(text.lower())
    return list({" ".join(words[i:i + NGRAM]).encode() for i in range(max(len(words) - NGRAM + 1, 1))}) if words else []


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _worker_datasketch(corpus_path: str, threshold: float) -> dict:
    """datasketch's MinHash + MinHashLSH with the same shingles, bands and rows; candidates verified."""
    from datasketch import MinHash, MinHashLSH

    docs = pd.read_parquet(corpus_path)
    params = params_for(threshold)
    base_rss = _peak_rss_mb()
    start = time.perf_counter()
    sketches = {}
    for doc_id, text in zip(docs["id"], docs["text"]):
        sketch = MinHash(num_perm=NUM_PERM)
        sketch.update_batch(_shingles(text))
        sketches[doc_id] = sketch
    signatures_s = time.perf_counter() - start
    lsh = MinHashLSH(num_perm=NUM_PERM, params=(params.bands, params.rows))
    for doc_id, sketch in sketches.items():
        lsh.insert(doc_id, sketch)
    edges = sum(1 for doc_id, sketch in sketches.items() for other in lsh.query(sketch)
                if other > doc_id and sketch.jaccard(sketches[other]) >= threshold)
    return {"signatures_s": signatures_s, "stage_s": time.perf_counter() - start, "edges": edges,
            "peak_rss_mb": _peak_rss_mb() - base_rss}


def _worker_isoflop(corpus_path: str, threshold: float) -> dict:
    """Signatures per shard, then the gather (buckets, verified edges, components)."""
    from isoflop.curate.minhash import signatures

    docs = pd.read_parquet(corpus_path)
    params = params_for(threshold)
    signatures(docs["text"].iloc[:2].tolist(), params)  # load the compiled kernel outside the timing
    base_rss = _peak_rss_mb()
    start = time.perf_counter()
    signatures(docs["text"].tolist(), params)
    signatures_s = time.perf_counter() - start
    start = time.perf_counter()
    signatures(docs["text"].tolist(), params, workers=2)
    two_threads_s = time.perf_counter() - start
    start = time.perf_counter()
    table = near_duplicates(docs, params, shard_docs=2000)
    return {"signatures_s": signatures_s, "stage_s": time.perf_counter() - start, "two_threads_s": two_threads_s,
            "removed": int((~table["keep"]).sum()), "peak_rss_mb": _peak_rss_mb() - base_rss}


def _worker_datatrove(corpus_path: str, threshold: float) -> dict:
    """datatrove's four MinHash stages (bench/dedup_datatrove.py) with the same shingles, bands and rows."""
    import dedup_datatrove

    docs = pd.read_parquet(corpus_path)
    params = params_for(threshold)
    config = dedup_datatrove.minhash_config(NGRAM, params.bands, params.rows)
    documents = dedup_datatrove.documents(docs["id"], docs["text"])
    with tempfile.TemporaryDirectory() as tmp:
        base_rss = _peak_rss_mb()
        start = time.perf_counter()
        result = dedup_datatrove.near_duplicates(documents, config, WORD.pattern, Path(tmp))
        stage_s = time.perf_counter() - start
    return {"signatures_s": result["seconds"]["signature"], "stage_s": stage_s, "stages_s": result["seconds"],
            "removed": result["removed"], "peak_rss_mb": _peak_rss_mb() - base_rss}


def _datatrove_missing() -> str | None:
    """Why datatrove's MinHash pipeline cannot run here, or None when it imports."""
    try:
        import datatrove.pipeline.dedup.minhash  # noqa: F401
        import datatrove.utils.hashes.xxhash  # noqa: F401
    except ImportError as err:
        return str(err)
    return None


def _worker_gather(paths: list[str]) -> dict:
    """Peak of the gather's own allocations (tracemalloc sees numpy arrays and Python objects; the
    process's peak RSS is set by its imports, far above what the gather adds)."""
    import tracemalloc

    tracemalloc.start()
    start = time.perf_counter()
    table = near_duplicate_clusters(paths)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    return {"gather_s": seconds, "peak_traced_mb": peak, "candidates_in_clusters": len(table)}


def _in_subprocess(worker: str, *args) -> dict:
    """Run a worker of this script in a fresh interpreter and return its JSON result."""
    out = subprocess.run([sys.executable, __file__, "_worker", worker, *map(str, args)], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def throughput(threshold: float) -> None:
    docs = default_corpus()
    mb = docs["text"].str.len().sum() / 1e6
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "corpus.parquet"
        docs.to_parquet(path)
        ours = _in_subprocess("isoflop", path, threshold)
        theirs = _in_subprocess("datasketch", path, threshold)
        datatrove_missing = _datatrove_missing()
        trove = None if datatrove_missing else _in_subprocess("datatrove", path, threshold)
    params = params_for(threshold)
    print(f"{len(docs)} documents, {mb:.1f} MB of text; num_perm {NUM_PERM}, {NGRAM}-word shingles, "
          f"{params.bands} bands x {params.rows} rows, threshold {threshold}; one process each\n")
    rows = []
    for name, r in (("isoflop", ours), ("datasketch", theirs), ("datatrove", trove)):
        if r is not None:
            rows.append({"system": name, "signatures docs/s": len(docs) / r["signatures_s"],
                         "near-dup stage docs/s": len(docs) / r["stage_s"], "peak RSS increase MB": r["peak_rss_mb"]})
    print(pd.DataFrame(rows).round(1).to_string(index=False))
    print(f"\nisoflop signatures with 2 threads: {len(docs) / ours['two_threads_s']:.1f} docs/s")
    print(f"speed-up: signatures {theirs['signatures_s'] / ours['signatures_s']:.1f}x, "
          f"whole near-dup stage {theirs['stage_s'] / ours['stage_s']:.1f}x "
          f"(removed by isoflop: {ours['removed']}; verified pairs found by datasketch: {theirs['edges']})")
    if trove is None:
        print(f"datatrove: skipped ({datatrove_missing}; see this script's docstring to install it)")
        return
    stages = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in trove["stages_s"].items())
    print(f"\ndatatrove MinHash pipeline ({params.bands} buckets x {params.rows} hashes = "
          f"{params.bands * params.rows} hashes per document, no Jaccard check; one worker, "
          f"{params.bands} bucket tasks in turn): {stages}")
    print(f"isoflop / datatrove, whole near-dup stage: {trove['stage_s'] / ours['stage_s']:.1f}x "
          f"(signature stage alone, which also writes and sorts datatrove's bucket files: "
          f"{trove['signatures_s'] / ours['signatures_s']:.1f}x)")
    print(f"removed: isoflop {ours['removed']}, datatrove {trove['removed']}")


def _ten_fold(docs: pd.DataFrame, near_copies: bool, seed: int) -> pd.DataFrame:
    """10x the corpus text. Without near copies, every document becomes 10x longer (itself and nine
    variants with every word suffixed, so they share no shingle): the same documents and candidates.
    With near copies, nine copies of each document with 0.5% of its words swapped: 10x documents,
    each a candidate."""
    if near_copies:
        rng = np.random.default_rng(seed)
        copies = [docs.assign(id=docs["id"] + f"~v{k}", text=[edit_text(t, "swap", 0.005, rng) for t in docs["text"]])
                  for k in range(1, 10)]
        return pd.concat([docs] + copies, ignore_index=True)
    longer = ["\n".join([t] + [WORD_OR_UPPER.sub(lambda m, k=k: f"{m.group(0)}q{k}", t) for k in range(1, 10)])
              for t in docs["text"]]
    return docs.assign(text=longer)


def memory(threshold: float, seed: int) -> None:
    base = default_corpus()
    params = params_for(threshold)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, docs in (("default", base), ("10x longer documents", _ten_fold(base, False, seed)),
                           ("10x, near copies", _ten_fold(base, True, seed))):
            paths = []
            for k, start in enumerate(range(0, len(docs), 2000)):
                paths.append(Path(tmp) / f"{len(rows)}-{k}.parquet")
                pq.write_table(signatures_for_shard(docs.iloc[start:start + 2000], params), paths[-1])
            result = _in_subprocess("gather", *paths)
            rows.append({"corpus": name, "docs": len(docs), "text MB": docs["text"].str.len().sum() / 1e6,
                         "signature files MB": sum(p.stat().st_size for p in paths) / 1e6,
                         "docs in dup clusters": result["candidates_in_clusters"],
                         "gather s (traced)": result["gather_s"], "gather peak MB": result["peak_traced_mb"]})
            del docs
    print(f"Gather step alone (fresh process), threshold {threshold}, {params.bands} x {params.rows}:\n")
    print(pd.DataFrame(rows).round(2).to_string(index=False))


# ---------------------------------------------------------------- the command a user runs

def _worker_cli(corpus_path: str, tiny_path: str, out_path: str, workers: str) -> dict:
    """`isoflop dedup` through the CLI's own `main`, once on a 2-document file (imports, the compiled kernel's
    load: the start-up), then timed on the corpus; also the wall time of the whole command as a process."""
    start = time.perf_counter()
    command = [sys.executable, "-m", "isoflop.cli", "dedup", corpus_path, "--out", out_path, "--workers", workers]
    subprocess.run(command, check=True, capture_output=True)
    process_s = time.perf_counter() - start
    from isoflop.cli import main

    start = time.perf_counter()
    main(["dedup", tiny_path, "--out", out_path, "--workers", workers])
    startup_s = time.perf_counter() - start
    start = time.perf_counter()
    main(["dedup", corpus_path, "--out", out_path, "--workers", workers])
    return {"work_s": time.perf_counter() - start, "startup_s": startup_s, "process_s": process_s}


def cli(n_docs: int, seed: int, threshold: float, repeats: int) -> None:
    """`isoflop dedup` as a user runs it (read, normalise, exact and near dedup, write), less its start-up,
    against datasketch's MinHash + LSH alone on the same documents (its input already in memory, its output
    never written). Each system in fresh processes, best of `repeats`."""
    from isoflop.curate.synthetic import planted_corpus

    docs = pd.concat([batch for batch, _ in planted_corpus(n_docs, seed)], ignore_index=True).head(n_docs)
    with tempfile.TemporaryDirectory() as tmp:
        path, tiny, out = Path(tmp) / "docs.parquet", Path(tmp) / "tiny.parquet", Path(tmp) / "out.parquet"
        docs.to_parquet(path, index=False)
        docs.head(2).to_parquet(tiny, index=False)
        theirs = min(_in_subprocess("datasketch", path, threshold)["stage_s"] for _ in range(repeats))
        rows = []
        for workers in (1, 2):
            runs = [_in_subprocess("cli", path, tiny, out, workers) for _ in range(repeats)]
            best = min(runs, key=lambda run: run["work_s"])
            rows.append({"isoflop dedup": f"--workers {workers}", "work s": best["work_s"],
                         "start-up s": best["startup_s"], "whole process s": min(r["process_s"] for r in runs),
                         "docs/s": n_docs / best["work_s"], "datasketch MinHash+LSH s": theirs,
                         "ratio": theirs / best["work_s"]})
        removed = int((~pd.read_parquet(out, columns=["keep"])["keep"]).sum())
    print(f"{n_docs} synthetic documents (isoflop.curate.synthetic.planted_corpus, seed {seed}), "
          f"{docs['text'].str.len().sum() / 1e6:.1f} MB of text; threshold {threshold}; best of {repeats}; "
          f"isoflop dedup removed {removed}\n")
    print(pd.DataFrame(rows).round(3).to_string(index=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    if len(sys.argv) > 2 and sys.argv[1] == "_worker":
        worker, rest = sys.argv[2], sys.argv[3:]
        if worker == "gather":
            print(json.dumps(_worker_gather(rest)))
        elif worker == "cli":
            print(json.dumps(_worker_cli(*rest)))
        else:
            worker_fn = {"isoflop": _worker_isoflop, "datasketch": _worker_datasketch,
                         "datatrove": _worker_datatrove}[worker]
            print(json.dumps(worker_fn(rest[0], float(rest[1]))))
        return
    parser.add_argument("mode", choices=["accuracy", "throughput", "memory", "cli"])
    parser.add_argument("--docs", type=int, default=10_000, help="cli: documents")
    parser.add_argument("--repeats", type=int, default=3, help="cli: runs of each timing (the best counts)")
    parser.add_argument("--sources", type=int, default=400)
    parser.add_argument("--copies", type=int, default=1200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threshold", type=float, default=0.8)
    args = parser.parse_args()
    if args.mode == "accuracy":
        accuracy(args.sources, args.copies, args.seed)
    elif args.mode == "throughput":
        throughput(args.threshold)
    elif args.mode == "cli":
        cli(args.docs, args.seed, args.threshold, args.repeats)
    else:
        memory(args.threshold, args.seed)


if __name__ == "__main__":
    main()
