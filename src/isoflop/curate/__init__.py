"""Data curation: what every training run sees. Correct, reproducible, fast, and shardable.

Sharded (the workflow, workflow/rules/data.smk): the functions of `stage.py`, each one Snakemake job per
shard or one gather job; every decision is keyed and ordered by document id, so any shard count gives the
same result. They are the only implementation of the stages; `pipeline.py` runs them in one process:

    summary = curate_shards(shard_paths, manifest_path, cfg, seed, work_dir, out_dir)   # curation.json
    kept, report = curate_documents(docs, cfg, seed=seed)   # a DataFrame as one shard; cfg {} for defaults
    train, val = split_validation(kept, val_fraction, seed)

Stages, in order (each a module): `normalise` (NFC, LF, no trailing whitespace), `quality`
(Gopher-style rules, thresholds per domain), `exact` (byte-identical texts), `near_dup` with
`minhash` (MinHash LSH with verified edges; memory follows candidate buckets, not text), `embed` +
`cluster` (TF-IDF+SVD or a local model, fitted on a sample drawn by id hash; k-means or hierarchical
k-means with balanced sampling), `semdedup` (SemDeDup inside clusters).

`isoflop dedup INPUT.parquet --out OUT.parquet` runs exact + near-dup dedup on one table (cli.py).
"""

import importlib

# Public names and the submodule that defines each, imported on first use (PEP 562): a shard job that
# only scans text must not pay for scikit-learn's import (about 1.2 s of its 1.5 s).
_EXPORTS = {
    "cluster": ["assign", "assign_levels", "balanced_sample", "hierarchical_kmeans", "kmeans", "top_terms"],
    "embed": ["fit_sample", "make_embedder"],
    "exact": ["exact_duplicates", "text_hashes"],
    "minhash": ["MinHashParams", "optimal_bands_rows", "s_curve", "signatures"],
    "near_dup": ["near_duplicate_clusters", "near_duplicates", "signatures_for_shard"],
    "normalise": ["normalise_documents", "normalise_text"],
    "pipeline": ["curate_documents", "curate_shards", "fill_defaults"],
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
