"""datatrove's MinHash near-duplicate pipeline, set up like isoflop's stage, for `bench_dedup.py throughput`.

Imported only by that script's datatrove worker, and only when datatrove imports (it is no dependency
of isoflop; see bench_dedup.py's docstring for the install into /tmp/dtsite).

The four stages run as datatrove documents them: MinhashDedupSignature -> MinhashDedupBuckets ->
MinhashDedupCluster -> MinhashDedupFilter, each by a LocalPipelineExecutor with one worker, its
files and logs under a scratch folder. Stage 2 must run one task per band (datatrove asserts that
the task count is a multiple of `num_buckets`); with one worker those tasks run one after another
in this process. The documents come from a list of `Document`s, read before the timing starts.

Shingles are made the same as isoflop's: datatrove's text normalisation is reduced to lower-casing
and the word tokenizer (passed as a `WordTokenizer`, datatrove's hook for custom tokenizers) splits
on isoflop's word pattern, so both systems hash the same 5-word shingles; only the hashing, the
LSH and the clustering differ. (datatrove's default for English would be spaCy's tokenizer after
stripping punctuation and collapsing numbers.)
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from datatrove.data import Document
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster,
                                              MinhashDedupFilter, MinhashDedupSignature)
from datatrove.utils.text import TextNormConfig
from datatrove.utils.word_tokenizers import WordTokenizer


class PatternWords(WordTokenizer):
    """Words are the matches of `pattern` (the text arrives lower-cased by datatrove's normalisation)."""

    def __init__(self, pattern: str):
        super().__init__()
        self.pattern = re.compile(pattern)

    def word_tokenize(self, text: str) -> list[str]:
        return self.pattern.findall(text)

    def sent_tokenize(self, text: str) -> list[str]:
        return [text]

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        return [(0, len(text))]


def minhash_config(ngram: int, bands: int, rows: int) -> MinhashConfig:
    """`bands` buckets of `rows` hashes (datatrove computes bands x rows hashes per document)."""
    only_lowercase = TextNormConfig(lowercase=True, norm_whitespace=False, remove_punctuation=False,
                                    norm_unicode_diacritics=False, norm_numbers=False)
    return MinhashConfig(n_grams=ngram, num_buckets=bands, hashes_per_bucket=rows, norm_config=only_lowercase)


def documents(ids, texts) -> list[Document]:
    return [Document(text=text, id=str(doc_id)) for doc_id, text in zip(ids, texts)]


def near_duplicates(docs: list[Document], config: MinhashConfig, word_pattern: str, workdir: Path) -> dict:
    """Run the four stages on `docs`; seconds per stage and the number of documents the filter dropped."""
    workdir = Path(workdir)
    sigs, buckets, clusters, logs = (str(workdir / name) for name in ("signatures", "buckets", "remove", "logs"))
    kept = []

    def count_kept(data, rank: int = 0, world_size: int = 1):
        kept.append(sum(1 for _ in data))
        return []

    stages = {
        "signature": LocalPipelineExecutor(
            [docs, MinhashDedupSignature(sigs, config=config, language=PatternWords(word_pattern))],
            tasks=1, workers=1, logging_dir=f"{logs}/signature"),
        "buckets": LocalPipelineExecutor(
            [MinhashDedupBuckets(sigs, buckets, config=config)],
            tasks=config.num_buckets, workers=1, logging_dir=f"{logs}/buckets"),
        "cluster": LocalPipelineExecutor(
            [MinhashDedupCluster(buckets, clusters, config=config)], tasks=1, workers=1, logging_dir=f"{logs}/cluster"),
        "filter": LocalPipelineExecutor(
            [docs, MinhashDedupFilter(clusters), count_kept], tasks=1, workers=1, logging_dir=f"{logs}/filter"),
    }
    seconds = {}
    for name, executor in stages.items():
        start = time.perf_counter()
        executor.run()
        seconds[name] = time.perf_counter() - start
    return {"seconds": seconds, "removed": len(docs) - sum(kept)}
