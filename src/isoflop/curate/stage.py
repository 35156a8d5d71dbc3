"""The curation as workflow jobs over the corpus shards (workflow/rules/data.smk): scatter, gather, scatter.

    scan_shard         per shard  normalise, quality rules, exact-dedup hashes, MinHash signatures
    dedup_decisions    gather     exact duplicates, then near duplicates among the exact survivors
    fit_embedding      gather     embedder, cluster centroids, 2-D map and top-term vocabulary, fitted on
                                  a sample drawn by id hash across all shards
    embed_shard        per shard  vectors, cluster ids, map coordinates, per-cluster TF-IDF sums
    cluster_decisions  gather     balanced sample (hierarchical k-means), then SemDeDup cluster by cluster
    merge_curated      gather     apply every decision, split train/val, write the curation report

Every decision is keyed by document id and every fit sees its inputs in id order, so the kept set, the
clusters and the split do not depend on the number of shards. These functions are the only implementation
of the curation: `pipeline.py` runs them in one process (`curate_shards`, and `curate_documents` on a
DataFrame as a single shard). Memory: a shard job holds one shard; `dedup_decisions` holds the text hashes
and the near-duplicate candidates (never signatures of unique documents, nor text); `fit_embedding` the
sample; `cluster_decisions` every id with its cluster labels plus the vectors of one cluster;
`merge_curated` the kept documents, which the tokenizer loads whole right after.

Removal decisions travel as tables (id, stage, duplicate_of, similarity); each gather also writes its
stages' report details as JSON, and `merge_curated` assembles `curation.json` with the documents, bytes
and words in and out of every stage per domain. With `curate.embed.enabled` false every document is in
cluster 0 and no map is drawn.
"""

from __future__ import annotations

import logging
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from scipy.sparse import csr_matrix

from isoflop.curate.embedding_store import load_embedding, save_embedding
from isoflop.curate.exact import exact_duplicates_on_disk, text_hashes
from isoflop.curate.minhash import MinHashParams
from isoflop.curate.near_dup import near_duplicate_clusters, signatures_for_shard
from isoflop.curate.normalise import normalise_documents
from isoflop.curate.quality import apply_quality_rules, domain_thresholds
from isoflop.curate.semdedup import semantic_duplicates
from isoflop.curate.split import ValidationSplit, id_uniform
from isoflop.errors import UserError
from isoflop.workflow import read_json, write_json

log = logging.getLogger(__name__)

STAGES = ("quality", "exact_dedup", "near_dup", "cluster", "semantic_dedup")
KEPT = "kept"  # the fate of a document no stage removed
DOCUMENT_COLUMNS = ["id", "domain", "source", "text", "n_bytes"]
REMOVED_SCHEMA = pa.schema([("id", pa.string()), ("stage", pa.string()), ("duplicate_of", pa.string()),
                            ("similarity", pa.float64())])
# The final gather's memory beside `curate.row_group_mib` of text per row group: the rows its merge
# buffers, over all shards together.
MERGE_BUFFER_ROWS = 2048
LEDGER_SCHEMA = pa.schema([("id", pa.string()), ("domain", pa.string()), ("n_bytes", pa.int64()),
                           ("n_words", pa.int64()), ("failed_rules", pa.list_(pa.string()))])


def enabled_stages(cfg: dict) -> list[str]:
    """The curation stages the `curate:` config switches on, in order (semantic dedup needs embeddings)."""
    switches = {"quality": cfg["quality"]["enabled"], "exact_dedup": cfg["exact_dedup"]["enabled"],
                "near_dup": cfg["near_dup"]["enabled"], "cluster": cfg["embed"]["enabled"],
                "semantic_dedup": cfg["embed"]["enabled"] and cfg["semantic_dedup"]["enabled"]}
    return [stage for stage in STAGES if switches[stage]]


def _write_removed(frame: pd.DataFrame, path) -> None:
    table = pa.Table.from_pandas(frame.reindex(columns=REMOVED_SCHEMA.names), schema=REMOVED_SCHEMA,
                                 preserve_index=False)
    pq.write_table(table, path)


def _removed_ids(paths) -> set[str]:
    return {doc_id for path in paths for doc_id in pq.read_table(path, columns=["id"])["id"].to_pylist()}


def _surviving(document_path, removed: set[str], columns=None) -> pd.DataFrame:
    docs = pq.read_table(document_path, columns=columns).to_pandas()
    return docs[~docs["id"].isin(removed)].reset_index(drop=True)


# --- per shard: normalise, quality rules, hashes, signatures -----------------------------------------------

def scan_shard(shard_path, cfg: dict, *, documents_out, ledger_out, hashes_out, signatures_out) -> None:
    """Normalise one corpus shard and judge it by the quality rules; write the survivors (`documents_out`,
    normalised text, `n_bytes` of that text), one ledger row per input document (bytes, words, failed
    rules), and the survivors' text hashes and MinHash signatures for the dedup gather (empty when that
    stage is off)."""
    docs = normalise_documents(pq.read_table(shard_path).to_pandas())
    docs["n_bytes"] = np.array([len(text.encode("utf-8", "surrogatepass")) for text in docs["text"]], dtype=np.int64)
    failed = [[] for _ in range(len(docs))]
    kept = docs
    if cfg["quality"]["enabled"]:
        kept, fails = apply_quality_rules(docs, cfg["quality"])
        failed = [fails.columns[row].tolist() for row in fails.to_numpy(dtype=bool)]
    ledger = pa.table({"id": docs["id"].tolist(), "domain": docs["domain"].tolist(),
                       "n_bytes": docs["n_bytes"].tolist(), "n_words": [len(t.split()) for t in docs["text"]],
                       "failed_rules": failed}, schema=LEDGER_SCHEMA)
    pq.write_table(ledger, ledger_out)
    kept[DOCUMENT_COLUMNS].to_parquet(documents_out, index=False)
    nothing = kept.iloc[:0]
    text_hashes(kept if cfg["exact_dedup"]["enabled"] else nothing).to_parquet(hashes_out, index=False)
    params = MinHashParams.from_config(cfg["near_dup"])
    pq.write_table(signatures_for_shard(kept if cfg["near_dup"]["enabled"] else nothing, params), signatures_out)
    log.info("%s: %d documents, %d pass the quality rules", shard_path, len(docs), len(kept))


# --- gather: exact and near duplicates ---------------------------------------------------------------------

def _examples(removed: pd.DataFrame, similarity_name: str | None, n: int) -> list[dict]:
    """The first `n` removed documents as {id, duplicate_of[, similarity_name]}, in the frame's order."""
    out = []
    for row in removed.head(n).itertuples():
        example = {"id": row.id, "duplicate_of": row.duplicate_of}
        if similarity_name:
            example[similarity_name] = float(row.similarity)
        out.append(example)
    return out


def _near_dup_among(signature_paths, removed: set[str], cfg: dict, scratch: Path) -> pd.DataFrame:
    """`near_duplicate_clusters` over the signatures of documents not in `removed`; a shard holding removed
    documents is rewritten without them into `scratch` first, one shard at a time."""
    removed = pa.array(sorted(removed), pa.string())
    paths = []
    for index, path in enumerate(signature_paths):
        if pc.any(pc.is_in(pq.read_table(path, columns=["id"])["id"], value_set=removed)).as_py():
            table = pq.read_table(path)
            path = scratch / f"signatures-{index:05d}.parquet"
            pq.write_table(table.filter(pc.invert(pc.is_in(table["id"], value_set=removed))), path)
        paths.append(path)
    return near_duplicate_clusters(paths, max_bucket_pairs=cfg["max_bucket_pairs"])


def dedup_decisions(hash_paths, signature_paths, cfg: dict, *, removed_out, details_out) -> dict:
    """Exact duplicates across all shards, then near duplicates among the documents exact dedup kept. Writes
    the removed documents (`removed_out`: id, stage, duplicate_of, similarity) and each stage's report details
    (`details_out`); returns the details."""
    n_examples = cfg["examples"]
    removed, details = [], {}
    exact_removed: set[str] = set()
    if cfg["exact_dedup"]["enabled"]:
        with tempfile.TemporaryDirectory(dir=Path(removed_out).parent) as scratch:
            table = exact_duplicates_on_disk(hash_paths, scratch)
        exact = table[~table["keep"]].rename(columns={"dup_cluster": "duplicate_of"}).assign(
            stage="exact_dedup", similarity=1.0)
        removed.append(exact)
        exact_removed = set(exact["id"])
        details["exact_dedup"] = {"duplicate_groups": int(table["keep"].sum()),
                                  "examples": _examples(exact, None, n_examples)}
    if cfg["near_dup"]["enabled"]:
        with tempfile.TemporaryDirectory(dir=Path(removed_out).parent) as scratch:
            table = _near_dup_among(signature_paths, exact_removed, cfg["near_dup"], Path(scratch))
        # The weakest merges first: they are the ones worth reading.
        near = table[~table["keep"]].rename(columns={"dup_cluster": "duplicate_of", "jaccard": "similarity"}).assign(
            stage="near_dup").sort_values(["similarity", "id"], kind="stable")
        removed.append(near)
        sizes = table.groupby("dup_cluster").size()
        largest = sizes.sort_values(ascending=False, kind="stable").head(n_examples)
        details["near_dup"] = {
            "params": MinHashParams.from_config(cfg["near_dup"]).to_dict(),
            "cluster_sizes": {int(size): int(n) for size, n in sizes.value_counts().sort_index().items()},
            "largest_clusters": [{"representative": rep, "size": int(n)} for rep, n in largest.items()],
            "examples": _examples(near, "estimated_jaccard", n_examples),
        }
    frame = pd.concat(removed, ignore_index=True) if removed else pd.DataFrame(columns=REMOVED_SCHEMA.names)
    _write_removed(frame, removed_out)
    write_json(details_out, details)
    log.info("dedup: %s documents removed", frame.groupby("stage").size().to_dict())
    return details


# --- gather on a sample: the embedder, the cluster tree, the map ----------------------------------------

def fit_embedding(document_paths, removed_paths, cfg: dict, seed: int, *, model_out) -> None:
    """Fit the embedder, the cluster centroids (one array per level, finest first), the 2-D map (PCA) and the
    top-term vocabulary on at most `embed.fit_docs` surviving documents with the lowest hash of (seed, id),
    in id order, and save them to `model_out` as arrays and JSON (`embedding_store`: nothing is pickled)."""
    from isoflop.curate import cluster as clustering  # scikit-learn: only the embedding jobs import it
    from isoflop.curate.embed import fit_sample, make_embedder, tfidf_vectorizer

    embed_cfg, cluster_cfg = cfg["embed"], cfg["cluster"]
    removed = _removed_ids(removed_paths)
    per_shard = []
    for path in document_paths:
        ids = _surviving(path, removed, ["id"])["id"].to_numpy(dtype=object)
        per_shard.append(ids[fit_sample(ids, embed_cfg["fit_docs"], seed)])
    pool = np.concatenate(per_shard)
    sample_ids = pool[fit_sample(pool, embed_cfg["fit_docs"], seed)].tolist()
    if not sample_ids:
        raise UserError("no document is left to embed after quality and dedup; loosen curate.quality or set "
                        "curate.embed.enabled: false")
    wanted = pa.array(sample_ids)
    texts_by_id = {}
    for path in document_paths:
        table = pq.read_table(path, columns=["id", "text"])
        table = table.filter(pc.is_in(table["id"], value_set=wanted))
        texts_by_id.update(zip(table["id"].to_pylist(), table["text"].to_pylist()))
    texts = [texts_by_id[doc_id] for doc_id in sample_ids]
    embedder = make_embedder(embed_cfg, seed).fit(texts)
    points = embedder.transform(texts)
    if cluster_cfg["method"] == "kmeans":
        levels = [clustering.kmeans(points, cluster_cfg["n_clusters"], seed)]
    else:
        levels = clustering.hierarchical_kmeans(points, cluster_cfg["levels"] + [cluster_cfg["n_clusters"]], seed,
                                                cluster_cfg["resampling_steps"], cluster_cfg["resample_points"])
    from sklearn.decomposition import PCA

    drawable = len(points) >= 2 and points.shape[1] >= 2
    model = {
        "embedder": embedder,
        "levels": levels,
        "map": PCA(n_components=2, svd_solver="full").fit(points) if drawable else None,
        # top terms come from the embedding's own TF-IDF when it has one, else from one fitted on the sample
        "vectorizer": getattr(embedder, "vectorizer_", None) or tfidf_vectorizer(embed_cfg["max_features"]).fit(
            [text[: embed_cfg["max_chars"]] for text in texts]),
    }
    save_embedding(model, model_out)
    log.info("embedding fitted on %d documents; %s clusters per level", len(texts), [len(c) for c in levels])


# --- per shard: vectors, clusters, map, term sums ----------------------------------------------------------

def embed_shard(document_path, removed_paths, model_path, cfg: dict, *, embedded_out, terms_out) -> None:
    """Embed the shard's surviving documents and label them with the fitted tree. Writes `embedded_out` (id,
    domain, cluster, cluster_level_<i> for the lower levels of hierarchical k-means, map_x, map_y, vector),
    one row group per cluster so the SemDeDup gather reads a cluster at a time, and `terms_out`: per cluster
    the sum of its documents' TF-IDF rows and their count (top terms are a ratio of such sums)."""
    from isoflop.curate import cluster as clustering

    model = load_embedding(model_path)
    docs = _surviving(document_path, _removed_ids(removed_paths), ["id", "domain", "text"])
    texts = docs["text"].tolist()
    levels = model["levels"]
    vectors = model["embedder"].transform(texts) if texts else np.zeros((0, levels[0].shape[1]), np.float32)
    labels = clustering.assign_levels(vectors, levels)
    out = docs[["id", "domain"]].assign(cluster=labels[-1])
    for index, level in enumerate(labels[:-1]):
        out[f"cluster_level_{index}"] = level
    xy = model["map"].transform(vectors) if model["map"] is not None and texts else np.zeros((len(docs), 2))
    out["map_x"], out["map_y"] = xy[:, 0].astype(np.float32), xy[:, 1].astype(np.float32)
    table = pa.Table.from_pandas(out, preserve_index=False).append_column(
        "vector", pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel(), pa.float32()), vectors.shape[1]))
    with pq.ParquetWriter(embedded_out, table.schema) as writer:
        for cluster in np.unique(labels[-1]):
            writer.write_table(table.filter(pa.array(labels[-1] == cluster)))

    max_chars, vectorizer = cfg["embed"]["max_chars"], model["vectorizer"]
    tfidf = vectorizer.transform([text[:max_chars] for text in texts]) if texts else csr_matrix(
        (0, len(vectorizer.vocabulary_)))
    tfidf = tfidf.astype(np.float64)
    n_docs = len(docs)
    membership = csr_matrix((np.ones(n_docs), (labels[-1], np.arange(n_docs))), shape=(len(levels[-1]), n_docs))
    np.savez(terms_out, sums=(membership @ tfidf).toarray(), counts=np.asarray(membership.sum(axis=1)).ravel())
    log.info("%s: %d documents embedded", document_path, len(docs))


# --- gather: balanced sample and SemDeDup, cluster by cluster ----------------------------------------------

def _term_sums(term_paths) -> tuple[np.ndarray, np.ndarray]:
    """Per cluster, the sum of its documents' TF-IDF rows and their number, over every shard's `terms_out`."""
    sums = counts = 0
    for path in term_paths:
        with np.load(path) as shard:
            sums, counts = sums + shard["sums"], counts + shard["counts"]
    return sums, counts


def _cluster_vectors(embedded_paths, cluster: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) of one cluster's documents across shards (row-group statistics skip the others)."""
    tables = [pq.read_table(path, columns=["id", "vector"], filters=[("cluster", "=", cluster)])
              for path in embedded_paths]
    table = pa.concat_tables(tables)
    dim = table.schema.field("vector").type.list_size
    vectors = table["vector"].combine_chunks().flatten().to_numpy().reshape(-1, dim)
    return np.array(table["id"].to_pylist(), dtype=object), vectors


def cluster_decisions(embedded_paths, term_paths, model_path, cfg: dict, seed: int, *, removed_out,
                      details_out) -> dict:
    """The cluster report (sizes, sizes per domain, top terms), the balanced sample of hierarchical k-means
    (documents not drawn are removed by the `cluster` stage), then SemDeDup inside each cluster among the
    drawn documents. Writes the removed documents and the details of the `cluster` and `semantic_dedup`
    stages; returns the details."""
    from isoflop.curate import cluster as clustering

    cluster_cfg, n_examples = cfg["cluster"], cfg["examples"]
    label_columns = [name for name in pq.read_schema(embedded_paths[0]).names if name.startswith("cluster")]
    labels = pd.concat([pd.read_parquet(path, columns=["id", "domain", *label_columns]) for path in embedded_paths],
                       ignore_index=True).sort_values("id", ignore_index=True)
    by_domain = labels.groupby(["cluster", "domain"]).size()
    model = load_embedding(model_path)
    details = {"cluster": {
        "method": cluster_cfg["method"],
        "embedder": cfg["embed"]["kind"],
        "n_clusters": int(labels["cluster"].nunique()),
        "sizes": {int(c): int(n) for c, n in labels["cluster"].value_counts().sort_index().items()},
        "sizes_by_domain": {int(c): {d: int(n) for d, n in by_domain[c].items()}
                            for c in by_domain.index.get_level_values(0).unique()},
        "top_terms": clustering.top_terms(*_term_sums(term_paths), model["vectorizer"].get_feature_names_out(),
                                          cluster_cfg["top_terms"]),
    }}
    removed = []
    chosen = np.ones(len(labels), dtype=bool)
    if cluster_cfg["method"] == "hierarchical_kmeans" and cluster_cfg["balanced_sample"]:
        levels = [labels[f"cluster_level_{i}"].to_numpy() for i in range(len(model["levels"]) - 1)]
        chosen = clustering.balanced_sample(levels + [labels["cluster"].to_numpy()], cluster_cfg["balanced_sample"],
                                            id_uniform(labels["id"], seed))
        removed.append(labels.loc[~chosen, ["id"]].assign(stage="cluster"))
        details["cluster"]["balanced_sample"] = int(chosen.sum())
    if "semantic_dedup" in enabled_stages(cfg):
        drawn = set(labels.loc[chosen, "id"])
        eps = cfg["semantic_dedup"]["eps"]
        pairs = []
        for cluster in sorted(labels["cluster"].unique()):
            ids, vectors = _cluster_vectors(embedded_paths, int(cluster))
            keep = np.array([doc_id in drawn for doc_id in ids], dtype=bool)
            pairs.append(semantic_duplicates(ids[keep], vectors[keep], np.zeros(keep.sum(), int), eps))
        semantic = pd.concat(pairs, ignore_index=True).rename(columns={"cosine": "similarity"}).assign(
            stage="semantic_dedup").sort_values("id", ignore_index=True)
        removed.append(semantic)
        details["semantic_dedup"] = {"eps": eps, "examples": _examples(
            semantic.sort_values("similarity", kind="stable"), "cosine", n_examples)}
    frame = pd.concat(removed, ignore_index=True) if removed else pd.DataFrame(columns=REMOVED_SCHEMA.names)
    _write_removed(frame, removed_out)
    write_json(details_out, details)
    log.info("clusters: %s; removed %s", details["cluster"]["sizes"], frame.groupby("stage").size().to_dict())
    return details


# --- gather: the curated output and its report -------------------------------------------------------------

def _stage_table(fates: pd.DataFrame, stages: list[str]) -> list[dict]:
    """One row per stage and domain (documents, bytes, words in and out) from per-(domain, fate) totals."""
    rows = []
    entering = fates
    for stage in ["input", *stages]:
        leaving = entering[entering["fate"] == stage]
        for domain in sorted(entering["domain"].unique()):
            mine, gone = entering[entering["domain"] == domain], leaving[leaving["domain"] == domain]
            row = {"stage": stage, "domain": domain}
            for unit in ("docs", "bytes", "words"):
                row[f"{unit}_in"] = int(mine[unit].sum())
                row[f"{unit}_out"] = row[f"{unit}_in"] - int(gone[unit].sum())
            row["removal_rate"] = 1 - row["docs_out"] / row["docs_in"]
            rows.append(row)
        entering = entering[entering["fate"] != stage]
    return rows


def _quality_details(rule_counts: Counter, first_failures: pd.DataFrame, domains: list[str], quality_cfg: dict,
                     n_examples: int) -> dict:
    """Removal counts per domain and rule (the rules that apply to the domain), and the first failing ids."""
    by_rule = {domain: {rule: rule_counts.get((domain, rule), 0)
                        for rule, threshold in domain_thresholds(quality_cfg, domain).items() if threshold is not None}
               for domain in domains}
    first = first_failures.sort_values("id").head(n_examples)
    examples = [{"id": r.id, "domain": r.domain, "rules": list(r.failed_rules)} for r in first.itertuples()]
    return {"removed_by_rule": by_rule, "examples": examples}


def _merged_by_id(paths, schema: pa.Schema, batch_rows: int):
    """The rows of the id-sorted Parquet files at `paths` as tables in id order (a k-way merge).

    Each file is read `batch_rows` at a time; every step emits the buffered rows up to the smallest last id
    among the buffers (no file can hold a smaller id later), so memory is one batch per file.
    """
    # pre_buffer (pyarrow's default) would read each file's every row group at once: the whole corpus
    readers = [pq.ParquetFile(path, pre_buffer=False, buffer_size=2**20).iter_batches(batch_size=batch_rows)
               for path in paths]
    buffers = [schema.empty_table() for _ in paths]

    def refilled(index: int) -> bool:
        while buffers[index].num_rows == 0:
            batch = next(readers[index], None)
            if batch is None:
                return False
            buffers[index] = pa.Table.from_batches([batch]).cast(schema)
        return True

    live = [index for index in range(len(paths)) if refilled(index)]
    while live:
        bound = min(buffers[index]["id"][-1].as_py() for index in live)
        parts = []
        for index in live:
            upto = pc.sum(pc.less_equal(buffers[index]["id"], bound)).as_py()
            parts.append(buffers[index].slice(0, upto))
            buffers[index] = buffers[index].slice(upto)
        merged = pa.concat_tables(parts)
        yield merged.take(pc.sort_indices(merged["id"]))
        live = [index for index in live if refilled(index)]


class _SplitWriter:
    """One curated split (train or val) written in id order, about `row_group_bytes` of text per row group;
    counts its documents and bytes per domain."""

    def __init__(self, path, schema: pa.Schema, row_group_bytes: float):
        self.writer = pq.ParquetWriter(path, schema)
        self.row_group_bytes = row_group_bytes
        self.pending: list[pa.Table] = []
        self.pending_bytes = 0
        self.written = False
        self.by_domain: dict[str, dict[str, int]] = {}

    def add(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        for row in table.group_by("domain").aggregate([("n_bytes", "count"), ("n_bytes", "sum")]).to_pylist():
            entry = self.by_domain.setdefault(row["domain"], {"documents": 0, "bytes": 0})
            entry["documents"] += row["n_bytes_count"]
            entry["bytes"] += row["n_bytes_sum"]
        self.pending.append(table)
        self.pending_bytes += pc.sum(table["n_bytes"]).as_py()
        if self.pending_bytes >= self.row_group_bytes:
            self._flush()

    def _flush(self) -> None:
        self.writer.write_table(pa.concat_tables(self.pending or [self.writer.schema.empty_table()]).combine_chunks())
        self.pending, self.pending_bytes, self.written = [], 0, True

    def close(self) -> dict[str, dict[str, int]]:
        if self.pending or not self.written:
            self._flush()
        self.writer.close()
        return dict(sorted(self.by_domain.items()))


def merge_curated(manifest_path, ledger_paths, document_paths, embedded_paths, removed_paths, details_paths,
                  cfg: dict, seed: int, out_dir) -> dict:
    """Apply every removal to every shard, add the cluster columns (`cluster` 0 for all when embeddings are
    off) and the map coordinates, split train/val by document id (`ValidationSplit`, the study seed), and
    write `out_dir/{train,val}.parquet` (rows in id order) and `out_dir/curation.json`: `ingest` (the
    manifest), `curation` (stage details, the per-stage and per-domain table, alarms), `split`.

    Bounded memory: one shard at a time, each shard's kept rows sorted by id into a scratch file, then a
    k-way merge of those files into the splits (MERGE_BUFFER_ROWS over all shards, `curate.row_group_mib`
    of text per split).
    What grows with the corpus is the set of removed ids and a few numbers per domain."""
    stages = enabled_stages(cfg)
    removed = pd.concat([pd.read_parquet(path) for path in removed_paths], ignore_index=True)
    fate_of = dict(zip(removed["id"], removed["stage"]))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    split = ValidationSplit(cfg["val_fraction"], seed)
    totals, first_failures, rule_counts = [], [], Counter()
    batch_rows = max(16, MERGE_BUFFER_ROWS // max(1, len(ledger_paths)))
    with tempfile.TemporaryDirectory(dir=out_dir.parent) as scratch:
        runs, run_rows = [], []
        for index, (ledger_path, document_path) in enumerate(zip(ledger_paths, document_paths)):
            ledger = pd.read_parquet(ledger_path)
            fate = pd.Series([fate_of.get(doc_id, KEPT) for doc_id in ledger["id"]], index=ledger.index)
            failed = ledger["failed_rules"].map(len) > 0
            fate[failed] = "quality"
            totals.append(ledger.assign(fate=fate, docs=1).groupby(["domain", "fate"], as_index=False)[
                ["docs", "n_bytes", "n_words"]].sum())
            failures = ledger.loc[failed, ["id", "domain", "failed_rules"]]
            rule_counts.update({key: int(n) for key, n in
                                failures.explode("failed_rules").groupby(["domain", "failed_rules"]).size().items()})
            first_failures.append(failures.sort_values("id").head(cfg["examples"]))
            docs = pd.read_parquet(document_path)
            docs = docs[~docs["id"].isin(fate_of.keys())]
            if embedded_paths:
                labels = [name for name in pq.read_schema(embedded_paths[index]).names
                          if name not in ("domain", "vector")]
                docs = docs.merge(pd.read_parquet(embedded_paths[index], columns=labels), on="id")
            else:
                docs = docs.assign(cluster=0)
            docs = docs.sort_values("id", ignore_index=True)
            split.observe(docs["id"], docs["domain"])
            runs.append(Path(scratch) / f"kept-{index:05d}.parquet")
            run_rows.append(len(docs))
            docs.to_parquet(runs[-1], index=False, row_group_size=batch_rows)
        fates = pd.concat(totals).groupby(["domain", "fate"], as_index=False).sum().rename(
            columns={"n_bytes": "bytes", "n_words": "words"})

        table = _stage_table(fates, stages)
        details = {}
        for path in details_paths:
            details.update(read_json(path))
        if "quality" in stages:
            details["quality"] = _quality_details(rule_counts, pd.concat(first_failures, ignore_index=True),
                                                  sorted(fates["domain"].unique()), cfg["quality"], cfg["examples"])
        report = {"config": cfg, "shards": len(ledger_paths), "stages": {}, "alarms": [], "table": table}
        for stage in ["input", *stages]:
            report["stages"][stage] = {**details.get(stage, {}),
                                       "per_domain": {row["domain"]: row for row in table if row["stage"] == stage}}
        alarm_rate = cfg["near_dup"]["alarm_removal_rate"]
        for domain, row in report["stages"].get("near_dup", {}).get("per_domain", {}).items():
            if row["removal_rate"] > alarm_rate:
                alarm = (f"near-dup dedup removed {row['removal_rate']:.1%} of domain {domain!r} "
                         f"(> curate.near_dup.alarm_removal_rate = {alarm_rate})")
                report["alarms"].append(alarm)
                log.warning(alarm)

        filled = [run for run, rows in zip(runs, run_rows) if rows]
        schema = pq.read_schema(filled[0] if filled else runs[0])
        writers = {name: _SplitWriter(out_dir / f"{name}.parquet", schema, cfg["row_group_mib"] * 2**20)
                   for name in ("train", "val")}
        for part in _merged_by_id(filled, schema, batch_rows):
            is_val = split.is_val(part["id"].to_pylist())
            writers["train"].add(part.filter(pa.array(~is_val)))
            writers["val"].add(part.filter(pa.array(is_val)))
        split_counts = {name: writer.close() for name, writer in writers.items()}
    manifest = read_json(manifest_path)
    summary = {
        "ingest": {key: value for key, value in manifest.items() if key != "shards"},
        "curation": report,
        "split": split_counts,
    }
    write_json(out_dir / "curation.json", summary)
    n_train, n_val = (sum(d["documents"] for d in split_counts[name].values()) for name in ("train", "val"))
    log.info("curated %d -> %d documents (%d train, %d val)", manifest["documents"], n_train + n_val, n_train, n_val)
    return summary
