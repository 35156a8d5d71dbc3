"""Peak memory of the tokenize stage (`rule tokenize`): streamed row group by row group
(`isoflop.tokens.tokenize_curated`, what the rule runs) against reading the curated splits whole (the
in-memory path it replaced, `build_tokens` on DataFrames), at two corpus sizes.

    PYTHONPATH=$PWD/src .venv/bin/python bench/bench_tokenize_memory.py --mb 15 150

writes a curated folder of --mb MB of training text (documents of 0.5-8 KB of random letters and spaces, 2%
of them again as validation) in row groups of --row-group-mb (the curation stage's `curate.row_group_mib`),
sorted by id as the curation stage writes it, then tokenizes it with the default tokenizer settings (a 512-id
byte-level BPE trained on an 8 MB sample) in a fresh process per path and size, and prints each one's peak
RSS (the child's VmHWM) and wall time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

_CHILD = """
import json, re, sys
from pathlib import Path
import pandas as pd
from isoflop.tokens import build_tokens, tokenize_curated
curated, out, how = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
cfg = {"vocab_size": 512, "train_bytes": 8_000_000}
if how == "streamed":
    meta = tokenize_curated(curated, cfg, out)
else:
    meta = build_tokens(pd.read_parquet(curated / "train.parquet"), pd.read_parquet(curated / "val.parquet"), cfg, out)
peak_kb = int(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1))
print(json.dumps({"max_rss_mb": peak_kb / 1024, "fingerprint": meta["fingerprint"]}))
"""


def write_curated(folder: Path, target_mb: float, row_group_mb: float, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    pool = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz     ", np.uint8)[rng.integers(0, 31, 2**23)].tobytes().decode()
    lengths = rng.integers(500, 8000, int(target_mb * 1e6 / 4250))
    starts = rng.integers(0, len(pool) - 8000, len(lengths))
    domains = np.array(["code", "docs", "tests"])[rng.integers(0, 3, len(lengths))]
    ids = [f"{domain}:{index:09d}" for index, domain in enumerate(domains)]
    rows_per_group = max(1, int(row_group_mb * 1e6 / 4250))
    folder.mkdir(parents=True)
    val = rng.random(len(lengths)) < 0.02
    for name, keep in (("train", ~val), ("val", val)):
        chosen = sorted(np.flatnonzero(keep), key=ids.__getitem__)
        with pq.ParquetWriter(folder / f"{name}.parquet", pa.schema([("id", pa.string()), ("domain", pa.string()),
                                                                      ("text", pa.string())])) as writer:
            for start in range(0, len(chosen), rows_per_group):
                rows = chosen[start:start + rows_per_group]
                writer.write_table(pa.table({"id": [ids[i] for i in rows], "domain": [domains[i] for i in rows],
                                             "text": [pool[starts[i]:starts[i] + lengths[i]] for i in rows]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, nargs="+", default=[15, 150])
    parser.add_argument("--row-group-mb", type=float, default=64)
    parser.add_argument("--paths", nargs="+", default=["streamed", "whole"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="isoflop-bench-tokenize-") as tmp:
        for mb in args.mb:
            curated = Path(tmp) / f"curated-{mb:g}"
            write_curated(curated, mb, args.row_group_mb)
            for how in args.paths:
                start = time.perf_counter()
                done = subprocess.run([sys.executable, "-c", _CHILD, str(curated), str(Path(tmp) / f"{how}-{mb:g}"), how],
                                      capture_output=True, text=True, check=True)
                report = json.loads(done.stdout.strip().splitlines()[-1])
                print(f"{mb:g} MB of text, {how}: peak RSS {report['max_rss_mb']:.0f} MB, "
                      f"{time.perf_counter() - start:.0f} s, fingerprint {report['fingerprint'][:12]}", flush=True)


if __name__ == "__main__":
    main()
