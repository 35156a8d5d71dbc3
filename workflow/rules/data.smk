# Data: ingest -> curation -> tokens. Curation runs over the corpus shards as Snakemake jobs
# (src/isoflop/curate/stage.py), each decision keyed by document id, so any `corpus.shards` gives the same
# curated folder:
#
#   curate_scan      one job per shard   normalise, quality rules, text hashes, MinHash signatures
#   curate_dedup     gather              exact duplicates, then near duplicates among the exact survivors
#                                        (memory: the hashes and the LSH candidates, never text)
#   curate_fit       gather (a sample)   embedder, cluster centroids and 2-D map, fitted on the
#                                        `curate.embed.fit_docs` survivors drawn by id hash across shards
#   curate_embed     one job per shard   vectors, cluster ids, map coordinates, per-cluster term sums
#   curate_clusters  gather              balanced sample, then SemDeDup one cluster at a time
#   curate           gather              apply every decision, split train/val, curation.json
#
# Embeddings are fitted on a sample and applied per shard, not computed in one gather job: embedding is the
# costly step (a neural model on GPU nodes at scale) and all vectors do not fit one job's memory, while the
# fitted state is sample-sized and a document's vector and cluster depend only on it and that state.
# SemDeDup is one gather reading one cluster at a time (row groups are per cluster) rather than a job per
# cluster: its memory is the largest cluster, and a job per cluster would cost a process start for work
# that takes milliseconds here. Applying the decisions and the split happen in the final gather rather than
# in per-shard jobs: the output is one train.parquet that the tokenizer loads whole, so that job reads every
# kept row anyway, and the split's fallback (a domain that draws no validation document) is a decision over
# a whole domain.
from isoflop.corpus import SHARD_FILE, shard_ids

SHARDS = shard_ids(config["corpus"]["shards"])
CURATING = LAYOUT.curating(IDS["curated"])  # intermediate files, beside CURATED under the same id
SHARD_WORK = CURATING / "shards" / "{shard}"
EMBEDDINGS = config["curate"]["embed"]["enabled"]
CLUSTER_DECISIONS = [CURATING / "cluster_removed.parquet"] if EMBEDDINGS else []
CLUSTER_DETAILS = [CURATING / "clusters.json"] if EMBEDDINGS else []
SHARD_JOBS = ("scan", "embed") if EMBEDDINGS else ("scan",)
GATHER_JOBS = ("dedup", "fit", "clusters", "curate") if EMBEDDINGS else ("dedup", "curate")
CURATE_BENCHMARKS = [LAYOUT.benchmark(f"curate/{job}-{shard}") for job in SHARD_JOBS for shard in SHARDS] + [
    LAYOUT.benchmark(f"curate/{job}") for job in GATHER_JOBS]


wildcard_constraints:
    shard=r"\d{5}",


rule corpus:
    output:
        shards=expand(CORPUS / SHARD_FILE, shard=SHARDS),
        manifest=CORPUS / "manifest.json",
    params:
        corpus=config["corpus"],
    log:
        LAYOUT.log("corpus"),
    benchmark:
        LAYOUT.benchmark("corpus")
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/corpus.py"


rule curate_scan:
    input:
        CORPUS / SHARD_FILE,
    output:
        documents=SHARD_WORK / "documents.parquet",
        ledger=SHARD_WORK / "ledger.parquet",
        hashes=SHARD_WORK / "hashes.parquet",
        signatures=SHARD_WORK / "signatures.parquet",
    threads: 1
    params:
        curate=config["curate"],
    log:
        LAYOUT.log("curate/scan-{shard}"),
    benchmark:
        LAYOUT.benchmark("curate/scan-{shard}")
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/curate_scan.py"


rule curate_dedup:
    input:
        hashes=expand(SHARD_WORK / "hashes.parquet", shard=SHARDS),
        signatures=expand(SHARD_WORK / "signatures.parquet", shard=SHARDS),
    output:
        removed=CURATING / "dedup_removed.parquet",
        details=CURATING / "dedup.json",
    threads: 1
    params:
        curate=config["curate"],
    log:
        LAYOUT.log("curate/dedup"),
    benchmark:
        LAYOUT.benchmark("curate/dedup")
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/curate_dedup.py"


rule curate_fit:
    input:
        documents=expand(SHARD_WORK / "documents.parquet", shard=SHARDS),
        removed=CURATING / "dedup_removed.parquet",
    output:
        CURATING / "embedding.npz",
    threads: 1
    params:
        curate=config["curate"],
        seed=config["seed"],
    log:
        LAYOUT.log("curate/fit"),
    benchmark:
        LAYOUT.benchmark("curate/fit")
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/curate_fit.py"


rule curate_embed:
    input:
        documents=SHARD_WORK / "documents.parquet",
        removed=CURATING / "dedup_removed.parquet",
        model=CURATING / "embedding.npz",
    output:
        embedded=SHARD_WORK / "embedded.parquet",
        terms=SHARD_WORK / "terms.npz",
    threads: 1
    params:
        curate=config["curate"],
    log:
        LAYOUT.log("curate/embed-{shard}"),
    benchmark:
        LAYOUT.benchmark("curate/embed-{shard}")
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/curate_embed.py"


rule curate_clusters:
    input:
        embedded=expand(SHARD_WORK / "embedded.parquet", shard=SHARDS),
        terms=expand(SHARD_WORK / "terms.npz", shard=SHARDS),
        model=CURATING / "embedding.npz",
    output:
        removed=CURATING / "cluster_removed.parquet",
        details=CURATING / "clusters.json",
    threads: 1
    params:
        curate=config["curate"],
        seed=config["seed"],
    log:
        LAYOUT.log("curate/clusters"),
    benchmark:
        LAYOUT.benchmark("curate/clusters")
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/curate_clusters.py"


rule curate:
    input:
        manifest=CORPUS / "manifest.json",
        ledgers=expand(SHARD_WORK / "ledger.parquet", shard=SHARDS),
        documents=expand(SHARD_WORK / "documents.parquet", shard=SHARDS),
        embedded=expand(SHARD_WORK / "embedded.parquet", shard=SHARDS) if EMBEDDINGS else [],
        removed=[CURATING / "dedup_removed.parquet", *CLUSTER_DECISIONS],
        details=[CURATING / "dedup.json", *CLUSTER_DETAILS],
    output:
        directory(CURATED),
    threads: 1
    params:
        curate=config["curate"],
        seed=config["seed"],
    log:
        LAYOUT.log("curate/curate"),
    benchmark:
        LAYOUT.benchmark("curate/curate")
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/curate_merge.py"


rule tokenize:
    input:
        CURATED,
        # a given tokenizer.json (tokenizer.path), read by the job
        *([config["tokenizer"]["path"]] if config["tokenizer"]["path"] else []),
    output:
        directory(TOKENS),
    params:
        # an unset tokenizer.path is left out: the key's arrival must not change (and so rerun) existing studies
        tokenizer={key: value for key, value in config["tokenizer"].items() if key != "path" or value},
    log:
        LAYOUT.log("tokenize"),
    benchmark:
        LAYOUT.benchmark("tokenize")
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/tokenize.py"
