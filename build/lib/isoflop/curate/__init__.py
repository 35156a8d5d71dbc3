"""Data curation: what every training run sees. Correct, reproducible, fast, and shardable.

In memory (the default study, tests, notebooks):

    kept, report = curate_documents(docs, cfg)          # cfg: the config's `curate:` object, {} for defaults
    train, val = split_validation(kept, val_fraction, seed)

Stages, in order (each a module): `normalise` (NFC, LF, no trailing whitespace), `quality`
(Gopher-style rules, thresholds per domain), `exact` (byte-identical texts), `near_dup` with
`minhash` (MinHash LSH with verified edges), `embed` + `cluster` (TF-IDF+SVD or a local model;
k-means or hierarchical k-means with balanced sampling), `semdedup` (SemDeDup inside clusters).

Sharded (the workflow: each line one Snakemake job per shard, or one gather job). Every decision
is keyed and ordered by document id, so any shard count gives the same result:

    apply_quality_rules(normalise_documents(shard), cfg["quality"]) -> kept, fails  (per shard)
    text_hashes(shard) -> Parquet                                                     (per shard)
    exact_duplicates([hash tables]) -> keep table (id, dup_cluster, keep)             (gather)
    signatures_for_shard(shard, MinHashParams) -> Parquet                             (per shard)
    near_duplicate_clusters([signature paths]) -> keep table (+ jaccard)              (gather; memory
                                                     follows candidate buckets, not text)
    apply_keep(shard, keep table) -> kept rows                                        (per shard)
    embedder = make_embedder(cfg["embed"], seed).fit(texts[fit_sample(ids, n, seed)]) (once, on a sample)
    centroids = kmeans(embedder.transform(sample), k, seed)                           (once)
    assign(embedder.transform(shard texts), centroids) -> cluster ids                 (per shard)
    semantic_duplicates(ids, vectors, clusters, eps)                                  (per cluster)

`isoflop dedup INPUT.parquet --out OUT.parquet` runs exact + near-dup dedup on one table (cli.py).
"""

import importlib

# Public names and the submodule that defines each, imported on first use (PEP 562): a shard job that
# only scans text must not pay for scikit-learn's import (about 1.2 s of its 1.5 s).
_EXPORTS = {
    "cluster": ["assign", "assign_levels", "balanced_sample", "hierarchical_kmeans", "kmeans", "top_terms"],
    "embed": ["fit_sample", "make_embedder", "map_2d"],
    "exact": ["apply_keep", "exact_duplicates", "text_hashes"],
    "minhash": ["MinHashParams", "optimal_bands_rows", "s_curve", "signatures"],
    "near_dup": ["near_duplicate_clusters", "near_duplicates", "signatures_for_shard"],
    "normalise": ["normalise_documents", "normalise_text"],
    "pipeline": ["curate_documents", "fill_defaults"],
    "quality": ["apply_quality_rules", "failing_rules", "quality_stats"],
    "semdedup": ["semantic_duplicates"],
    "split": ["split_validation"],
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
