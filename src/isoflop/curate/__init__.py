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

from isoflop.curate.cluster import assign, assign_levels, balanced_sample, hierarchical_kmeans, kmeans, top_terms
from isoflop.curate.embed import fit_sample, make_embedder, map_2d
from isoflop.curate.exact import apply_keep, exact_duplicates, text_hashes
from isoflop.curate.minhash import MinHashParams, optimal_bands_rows, s_curve, signatures
from isoflop.curate.near_dup import near_duplicate_clusters, near_duplicates, signatures_for_shard
from isoflop.curate.normalise import normalise_documents, normalise_text
from isoflop.curate.pipeline import curate_documents, fill_defaults
from isoflop.curate.quality import apply_quality_rules, failing_rules, quality_stats
from isoflop.curate.semdedup import semantic_duplicates
from isoflop.curate.split import split_validation

__all__ = [
    "MinHashParams", "apply_keep", "apply_quality_rules", "assign", "assign_levels", "balanced_sample", "curate_documents",
    "exact_duplicates", "fill_defaults", "failing_rules", "fit_sample", "hierarchical_kmeans", "kmeans",
    "make_embedder", "map_2d", "near_duplicate_clusters", "near_duplicates", "normalise_documents",
    "normalise_text", "optimal_bands_rows", "quality_stats", "s_curve", "semantic_duplicates", "signatures",
    "signatures_for_shard", "split_validation", "text_hashes", "top_terms",
]
