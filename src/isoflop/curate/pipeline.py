"""The curation in one process: `curate_shards` over corpus shards, `curate_documents` over a DataFrame.

There is one implementation of every curation stage: the shard-level functions of `stage.py`, which the
workflow runs as separate jobs (workflow/rules/data.smk). `curate_shards` calls them in the workflow's
order; `curate_documents` writes the documents as a single shard into a temporary folder and runs
`curate_shards` on it. A driver rather than an in-memory core per stage because the stages' contract is
their files (decisions keyed by id, details as JSON, the ledger): an in-memory core would be a second
interface to every stage that every new stage would need too, while the round trip through Parquet costs
little next to the embedding. So the in-memory result is the sharded result by construction.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from isoflop.config import schema_path, validate_config
from isoflop.curate.stage import (cluster_decisions, dedup_decisions, embed_shard, fit_embedding, merge_curated,
                                  scan_shard)
from isoflop.errors import UserError
from isoflop.workflow import write_json

SCHEMA_PATH = schema_path("curate")
REQUIRED_COLUMNS = ("id", "domain", "text")
SHARD_FILES = {"documents": "parquet", "ledger": "parquet", "hashes": "parquet", "signatures": "parquet",
               "embedded": "parquet", "terms": "npz"}


def fill_defaults(cfg: dict | None, schema_path: Path = SCHEMA_PATH) -> dict:
    """A validated copy of the `curate:` config object with every missing key set to its default."""
    return validate_config(cfg or {}, schema_path)


def curate_shards(shard_paths, manifest_path, cfg: dict, seed: int, work_dir, out_dir) -> dict:
    """The curation rules of workflow/rules/data.smk run in this process, in the workflow's order, over the
    corpus shards `shard_paths` (with their ingest `manifest_path`). `cfg` is a filled `curate:` object.
    Intermediate files go to `work_dir`; `out_dir` gets train.parquet, val.parquet and curation.json, whose
    content is returned (see `stage.merge_curated`)."""
    work = Path(work_dir)
    files = {name: [work / f"{name}-{i:05d}.{ext}" for i in range(len(shard_paths))]
             for name, ext in SHARD_FILES.items()}
    for i, shard in enumerate(shard_paths):
        scan_shard(shard, cfg, documents_out=files["documents"][i], ledger_out=files["ledger"][i],
                   hashes_out=files["hashes"][i], signatures_out=files["signatures"][i])
    removed, details = [work / "dedup_removed.parquet"], [work / "dedup.json"]
    dedup_decisions(files["hashes"], files["signatures"], cfg, removed_out=removed[0], details_out=details[0])
    embedded = []
    if cfg["embed"]["enabled"]:
        model = work / "embedding.npz"
        fit_embedding(files["documents"], removed, cfg, seed, model_out=model)
        for i in range(len(shard_paths)):
            embed_shard(files["documents"][i], removed, model, cfg, embedded_out=files["embedded"][i],
                        terms_out=files["terms"][i])
        embedded = files["embedded"]
        # both lists gain the cluster decisions only now: the embedding reads the dedup decisions alone
        cluster_decisions(embedded, files["terms"], model, cfg, seed, removed_out=work / "cluster_removed.parquet",
                          details_out=work / "clusters.json")
        removed.append(work / "cluster_removed.parquet")
        details.append(work / "clusters.json")
    return merge_curated(manifest_path, files["ledger"], files["documents"], embedded, removed, details, cfg, seed,
                         out_dir)


def _check_input(docs: pd.DataFrame) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in docs.columns]
    if missing:
        raise UserError(f"documents lack the column(s) {', '.join(missing)}; have {', '.join(map(str, docs.columns))}")
    duplicated = docs["id"][docs["id"].duplicated()]
    if len(duplicated):
        raise UserError(f"document ids must be unique; {len(duplicated)} repeat, e.g. {duplicated.iloc[0]!r}")


def curate_documents(docs: pd.DataFrame, cfg: dict | None, *, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Run every enabled curation stage on `docs` (columns id, domain, text as strings, optionally source;
    any others are carried through), as the workflow does on a corpus of one shard.

    Stages, in order: normalise, quality rules, exact dedup, near-dup dedup, embed + cluster, semantic
    dedup. `cfg` is the config's `curate:` object; missing keys take the schema defaults (`{}` is fine).
    `seed` (the study seed) drives the embedding sample and k-means only: what counts as a duplicate never
    depends on it.

    Returns (kept documents in input order, report). The kept documents have their text normalised and
    gain `n_bytes` (of that text), `cluster` (0 for all with embeddings off), `cluster_level_<i>` for the
    lower levels of hierarchical k-means, and `map_x`, `map_y`. The report is the `curation` object of
    the workflow's curation.json: `table` has one row per stage and domain (documents, bytes and words in
    and out); `stages` holds each stage's details (removal counts per rule, example pairs, cluster sizes,
    top terms); `alarms` lists domains whose near-dup removal rate passed `near_dup.alarm_removal_rate`.
    """
    cfg = fill_defaults(cfg)
    _check_input(docs)
    # the shard format has a source column; documents given in memory need not
    shard = docs if "source" in docs.columns else docs.assign(source="")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shard[["id", "domain", "source", "text"]].to_parquet(work / "shard.parquet", index=False)
        write_json(work / "manifest.json", {"documents": len(docs)})
        summary = curate_shards([work / "shard.parquet"], work / "manifest.json", cfg, seed, work, work / "curated")
        curated = pd.concat([pd.read_parquet(work / "curated" / f"{split}.parquet") for split in ("train", "val")],
                            ignore_index=True)
    # the caller's other columns back, by id; an inner merge keeps the left (input) order
    own = [c for c in docs.columns if c not in curated.columns]
    kept = docs[["id", *own]].merge(curated, on="id")
    added = [c for c in curated.columns if c not in shard.columns]
    return kept[[*docs.columns, *added]], summary["curation"]
