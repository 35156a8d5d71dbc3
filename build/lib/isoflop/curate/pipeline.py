"""`curate_documents`: every curation stage in order, in memory, with a JSON-serialisable report.

The stages call the same shard-level functions the workflow runs as separate jobs, so the in-memory
result equals the sharded one (tests/test_curate_determinism.py).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from isoflop.config import schema_path, validate_config
from isoflop.curate import cluster as clustering
from isoflop.curate.embed import fit_sample, make_embedder, map_2d, tfidf_vectorizer
from isoflop.curate.exact import apply_keep, exact_duplicates, text_hashes
from isoflop.curate.minhash import MinHashParams, s_curve
from isoflop.curate.near_dup import near_duplicates
from isoflop.curate.normalise import normalise_documents
from isoflop.curate.quality import apply_quality_rules
from isoflop.curate.semdedup import semantic_duplicates
from isoflop.curate.split import id_uniform
from isoflop.errors import UserError

SCHEMA_PATH = schema_path("curate")
REQUIRED_COLUMNS = ("id", "domain", "text")
log = logging.getLogger(__name__)


def fill_defaults(cfg: dict | None, schema_path: Path = SCHEMA_PATH) -> dict:
    """A validated copy of the `curate:` config object with every missing key set to its default."""
    return validate_config(cfg or {}, schema_path)


class _Ledger:
    """Documents, bytes and words per domain going into and out of each stage: the report's table."""

    def __init__(self, docs: pd.DataFrame):
        self.bytes = pd.Series([len(t.encode("utf-8", "surrogatepass")) for t in docs["text"]], index=docs.index)
        self.words = pd.Series([len(t.split()) for t in docs["text"]], index=docs.index)
        self.rows: list[dict] = []

    def record(self, stage: str, before: pd.DataFrame, after: pd.DataFrame) -> dict:
        """Append one row per domain and return {domain: row} for the stage's own report section."""
        per_domain = {}
        for domain in sorted(set(before["domain"])):
            b = before.index[before["domain"] == domain]
            a = after.index[after["domain"] == domain]
            row = {
                "stage": stage, "domain": domain,
                "docs_in": len(b), "docs_out": len(a),
                "bytes_in": int(self.bytes[b].sum()), "bytes_out": int(self.bytes[a].sum()),
                "words_in": int(self.words[b].sum()), "words_out": int(self.words[a].sum()),
            }
            row["removal_rate"] = 1 - row["docs_out"] / row["docs_in"] if row["docs_in"] else 0.0
            self.rows.append(row)
            per_domain[domain] = row
        return per_domain


def _check_input(docs: pd.DataFrame) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in docs.columns]
    if missing:
        raise UserError(f"documents lack the column(s) {', '.join(missing)}; have {', '.join(map(str, docs.columns))}")
    duplicated = docs["id"][docs["id"].duplicated()]
    if len(duplicated):
        raise UserError(f"document ids must be unique; {len(duplicated)} repeat, e.g. {duplicated.iloc[0]!r}")


def _quality_stage(docs: pd.DataFrame, quality_cfg: dict, n_examples: int) -> tuple[pd.DataFrame, dict]:
    kept, fails = apply_quality_rules(docs, quality_cfg)
    by_rule = {domain: {rule: int(n) for rule, n in fails.loc[members.index].sum().items()}
               for domain, members in docs.groupby("domain", sort=True)}
    failed = fails.index[fails.any(axis=1)][:n_examples]
    examples = [{"id": docs.at[i, "id"], "domain": docs.at[i, "domain"],
                 "rules": [rule for rule in fails.columns if fails.at[i, rule]]} for i in failed]
    return kept, {"removed_by_rule": by_rule, "examples": examples}


def _exact_stage(docs: pd.DataFrame, n_examples: int) -> tuple[pd.DataFrame, dict]:
    table = exact_duplicates([text_hashes(docs)])
    removed = table[~table["keep"]]
    examples = [{"id": r.id, "duplicate_of": r.dup_cluster} for r in removed.head(n_examples).itertuples()]
    return apply_keep(docs, table), {"duplicate_groups": int(table["keep"].sum()), "examples": examples}


def _near_dup_stage(docs: pd.DataFrame, near_cfg: dict, n_examples: int) -> tuple[pd.DataFrame, dict]:
    params = MinHashParams.from_config(near_cfg)
    table = near_duplicates(docs, params, max_bucket_pairs=near_cfg["max_bucket_pairs"])
    removed = table[~table["keep"]].sort_values("jaccard")
    sizes = table.groupby("dup_cluster").size()
    similarity = np.linspace(0, 1, 51)
    # The weakest merges first: they are the ones worth reading.
    examples = [{"id": r.id, "duplicate_of": r.dup_cluster, "estimated_jaccard": float(r.jaccard)}
                for r in removed.head(n_examples).itertuples()]
    return apply_keep(docs, table), {
        "params": params.to_dict(),
        "s_curve": {"similarity": similarity.round(3).tolist(),
                    "probability": s_curve(similarity, params.bands, params.rows).round(5).tolist()},
        "cluster_sizes": {int(size): int(n) for size, n in sizes.value_counts().sort_index().items()},
        "largest_clusters": [{"representative": rep, "size": int(n)}
                             for rep, n in sizes.sort_values(ascending=False, kind="stable").head(n_examples).items()],
        "examples": examples,
    }


def _cluster_stage(docs: pd.DataFrame, cfg: dict, seed: int) -> tuple[pd.DataFrame, dict, np.ndarray]:
    """Adds `cluster` (and `cluster_level_<i>` for hierarchical k-means), `map_x`, `map_y`."""
    embed_cfg, cluster_cfg = cfg["embed"], cfg["cluster"]
    ids = docs["id"].to_numpy(dtype=object)
    texts = docs["text"].tolist()
    sample = fit_sample(ids, embed_cfg["fit_docs"], seed)
    embedder = make_embedder(embed_cfg, seed).fit([texts[i] for i in sample])
    vectors = embedder.transform(texts)
    fit_points = vectors[sample]
    out = docs.copy()
    if cluster_cfg["method"] == "kmeans":
        centroids = clustering.kmeans(fit_points, cluster_cfg["n_clusters"], seed)
        labels = clustering.assign(vectors, centroids)
        levels = [labels]
    else:
        tree = clustering.hierarchical_kmeans(
            fit_points, cluster_cfg["levels"] + [cluster_cfg["n_clusters"]], seed,
            cluster_cfg["resampling_steps"], cluster_cfg["resample_points"])
        levels = clustering.assign_levels(vectors, tree)
        for i, level in enumerate(levels[:-1]):
            out[f"cluster_level_{i}"] = level
        labels = levels[-1]
    out["cluster"] = labels
    xy = map_2d(vectors)
    out["map_x"], out["map_y"] = xy[:, 0], xy[:, 1]

    vectorizer = embedder.vectorizer_ if hasattr(embedder, "vectorizer_") else tfidf_vectorizer(embed_cfg["max_features"]).fit(
        [texts[i][: embed_cfg["max_chars"]] for i in sample])
    tfidf = vectorizer.transform([t[: embed_cfg["max_chars"]] for t in texts])
    terms = clustering.top_terms(tfidf, labels, vectorizer.get_feature_names_out(), cluster_cfg["top_terms"])
    sizes = out.groupby(["cluster", "domain"]).size()
    report = {
        "method": cluster_cfg["method"],
        "embedder": embed_cfg["kind"],
        "n_clusters": int(len(np.unique(labels))),
        "sizes": {int(c): int(n) for c, n in out["cluster"].value_counts().sort_index().items()},
        "sizes_by_domain": {int(c): {d: int(n) for d, n in sizes[c].items()} for c in sizes.index.levels[0] if c in sizes},
        "top_terms": {int(c): t for c, t in terms.items()},
    }
    if cluster_cfg["method"] == "hierarchical_kmeans" and cluster_cfg["balanced_sample"]:
        chosen = clustering.balanced_sample(levels, cluster_cfg["balanced_sample"], id_uniform(ids, seed))
        out, vectors = out[chosen], vectors[chosen]
        report["balanced_sample"] = int(chosen.sum())
    return out, report, vectors


def _semantic_stage(docs: pd.DataFrame, vectors: np.ndarray, eps: float, n_examples: int):
    table = semantic_duplicates(docs["id"].to_numpy(dtype=object), vectors, docs["cluster"].to_numpy(), eps)
    keep = ~docs["id"].isin(set(table["id"])).to_numpy()
    examples = [{"id": r.id, "duplicate_of": r.duplicate_of, "cosine": float(r.cosine)}
                for r in table.sort_values("cosine", kind="stable").head(n_examples).itertuples()]
    return docs[keep], vectors[keep], {"eps": eps, "examples": examples}


def curate_documents(docs: pd.DataFrame, cfg: dict | None, *, progress: bool = True,
                     seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Run every enabled curation stage on `docs` (columns id, domain, text, any others kept).

    Stages, in order: normalise, quality rules, exact dedup, near-dup dedup, embed + cluster (adds
    `cluster`, `map_x`, `map_y`), semantic dedup. `cfg` is the config's `curate:` object; missing keys
    take the schema defaults (`{}` is fine). `seed` (the study seed) drives the embedding sample and
    k-means only: what counts as a duplicate never depends on it.

    Returns (kept documents in input order, report). The report is JSON-serialisable: `table` has
    one row per stage and domain (documents, bytes and words in and out); `stages` holds each
    stage's details (removal counts per rule, example pairs, cluster sizes, top terms); `alarms`
    lists domains whose near-dup removal rate passed `near_dup.alarm_removal_rate`.
    """
    cfg = fill_defaults(cfg)
    _check_input(docs)
    n_examples = cfg["examples"]
    docs = normalise_documents(docs)
    ledger = _Ledger(docs)
    report: dict = {"config": cfg, "stages": {}, "alarms": []}
    steps = ["quality", "exact_dedup", "near_dup", "cluster", "semantic_dedup"]
    enabled = {
        "quality": cfg["quality"]["enabled"],
        "exact_dedup": cfg["exact_dedup"]["enabled"],
        "near_dup": cfg["near_dup"]["enabled"],
        "cluster": cfg["embed"]["enabled"],
        "semantic_dedup": cfg["embed"]["enabled"] and cfg["semantic_dedup"]["enabled"],
    }
    report["stages"]["input"] = {"per_domain": ledger.record("input", docs, docs)}
    vectors = None
    for step in tqdm([s for s in steps if enabled[s]], desc="curate", disable=not progress):
        before = docs
        if step == "quality":
            docs, details = _quality_stage(docs, cfg["quality"], n_examples)
        elif step == "exact_dedup":
            docs, details = _exact_stage(docs, n_examples)
        elif step == "near_dup":
            docs, details = _near_dup_stage(docs, cfg["near_dup"], n_examples)
        elif step == "cluster":
            docs, details, vectors = _cluster_stage(docs, cfg, seed)
        else:
            docs, vectors, details = _semantic_stage(docs, vectors, cfg["semantic_dedup"]["eps"], n_examples)
        details["per_domain"] = ledger.record(step, before, docs)
        report["stages"][step] = details
    for domain, row in report["stages"].get("near_dup", {}).get("per_domain", {}).items():
        if row["removal_rate"] > cfg["near_dup"]["alarm_removal_rate"]:
            alarm = (f"near-dup dedup removed {row['removal_rate']:.1%} of domain {domain!r} "
                     f"(> curate.near_dup.alarm_removal_rate = {cfg['near_dup']['alarm_removal_rate']})")
            report["alarms"].append(alarm)
            log.warning(alarm)
    report["table"] = ledger.rows
    return docs, report
