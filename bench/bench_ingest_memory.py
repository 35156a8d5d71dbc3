"""Peak memory of the corpus ingest (`rule corpus`): the streaming ingest against the in-memory one it replaced.

    PYTHONPATH=$PWD/src .venv/bin/python bench/bench_ingest_memory.py --mb 200

writes a generated corpus (Parquet files of documents of 0.5-8 KB of random letters and spaces, about the
document count per MB of bench_curate_scale.py's planted corpus) under a temporary folder, ingests it as a
`corpus.sources` entry with shards of about --shard-mb of text, once with this checkout's code and once with
the code of --baseline (a git revision, extracted with `git archive`; default: the last in-memory ingest),
each in a fresh process, and prints each one's peak RSS (the child's VmHWM) and wall time, their ratio,
and whether every output file is byte-identical. tests/test_corpus_streaming.py runs `ingest_peak` on two
small corpora.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
IN_MEMORY_INGEST = "655ea86"  # the last revision whose ingest held the whole corpus in memory
FILE_MB = 8  # text per generated Parquet file

# The child's own peak is VmHWM: ru_maxrss would count the parent's resident size when it forked.
_CHILD = """
import json, re, sys
from pathlib import Path
from isoflop.corpus import ingest
manifest = ingest(json.loads(sys.argv[1]), sys.argv[2], progress=False)
peak_kb = int(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1))
print(json.dumps({"max_rss_mb": peak_kb / 1024, "documents": manifest["documents"], "bytes": manifest["bytes"]}))
"""


def write_corpus(folder: Path, target_mb: float, seed: int = 0) -> None:
    """Parquet files of documents (random lowercase letters and spaces, 0.5-8 KB each) until `target_mb`
    MB of text; slices of one random pool, so writing 100 MB takes a second or two."""
    rng = np.random.default_rng(seed)
    pool = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz     ", np.uint8)[rng.integers(0, 31, 2**23)].tobytes().decode()
    folder.mkdir(parents=True, exist_ok=True)
    written, index = 0, 0
    while written < target_mb * 1e6:
        lengths = rng.integers(500, 8000, int(FILE_MB * 1e6 / 4250))
        starts = rng.integers(0, len(pool) - 8000, len(lengths))
        texts = [pool[start:start + length] for start, length in zip(starts, lengths)]
        pq.write_table(pa.table({"text": texts}), folder / f"part-{index:05d}.parquet")
        written += int(lengths.sum())
        index += 1


def corpus_config(folder: Path, shards: int) -> dict:
    from isoflop.config import validate_config

    return validate_config({"corpus": {"stdlib": {"enabled": False}, "shards": shards,
                                       "sources": [{"path": str(folder), "format": "parquet", "domain": "web"}]}})["corpus"]


def ingest_process(corpus_cfg: dict, out_dir: Path, src: Path = REPO / "src") -> subprocess.Popen:
    """An ingest in a fresh process with `src` first on its path; it prints its peak RSS as it ends."""
    env = {**os.environ, "PYTHONPATH": str(src), "ISOFLOP_PROGRESS": "0"}
    return subprocess.Popen([sys.executable, "-c", _CHILD, json.dumps(corpus_cfg), str(out_dir)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def ingest_peak(corpus_cfg: dict, out_dir: Path, src: Path = REPO / "src") -> dict:
    """`ingest_process` to its end: its peak RSS (MB), wall time, documents and bytes, and the sha256 of
    every output file."""
    start = time.perf_counter()
    child = ingest_process(corpus_cfg, out_dir, src)
    stdout, stderr = child.communicate()
    if child.returncode:
        raise RuntimeError(f"the ingest failed:\n{stderr[-4000:]}")
    result = {**json.loads(stdout.splitlines()[-1]), "wall_s": time.perf_counter() - start}
    result["files"] = {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(out_dir.iterdir())}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=200, help="text to generate, in MB (default 200)")
    parser.add_argument("--shard-mb", type=float, default=64, help="text per shard (default 64, as bench_curate_scale)")
    parser.add_argument("--baseline", default=IN_MEMORY_INGEST, help="git revision to compare with")
    parser.add_argument("--workdir", default=None, help="where the corpus and outputs go (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        tmp = Path(tmp)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", args.baseline, "src"], capture_output=True,
                                 check=True).stdout
        tarfile.open(fileobj=io.BytesIO(archive)).extractall(tmp, filter="data")
        write_corpus(tmp / "corpus", args.mb)
        cfg = corpus_config(tmp / "corpus", max(1, math.ceil(args.mb / args.shard_mb)))
        new = ingest_peak(cfg, tmp / "new")
        old = ingest_peak(cfg, tmp / "old", tmp / "src")
    for name, result in ((f"in memory ({args.baseline})", old), ("streaming", new)):
        print(f"{name:>22}: peak RSS {result['max_rss_mb']:7.0f} MB, {result['wall_s']:6.1f} s")
    print(f"{new['documents']} documents, {new['bytes'] / 1e6:.0f} MB of text, {cfg['shards']} shards: streaming "
          f"peak / in-memory peak = {new['max_rss_mb'] / old['max_rss_mb']:.2f}; outputs byte-identical: "
          f"{new['files'] == old['files']}")


if __name__ == "__main__":
    main()
