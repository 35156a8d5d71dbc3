"""The curation section of the study report, read from `curation.json` and the curated Parquet files.

`curation_section(curation, figures_dir, curated_dir)` returns markdown lines: documents and bytes in and
out of every stage per domain, removals per quality rule, example duplicate pairs, the MinHash settings with
their S-curve, the clusters with their top terms on a 2-D map, and alarms. Figures are drawn into
`figures_dir` and referenced as `<figures_dir name>/<file>` (the report sits beside that folder).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

S_CURVE_FIGURE = "curation_s_curve.png"
CLUSTER_MAP_FIGURE = "curation_clusters.png"
MAP_COLUMNS = ["cluster", "map_x", "map_y"]


def _percent(part: float, whole: float) -> str:
    return f"{part / whole:.1%}" if whole else "n/a"


def _stage_table(table: list[dict]) -> list[str]:
    lines = ["| stage | domain | documents in | documents out | bytes in | bytes out | documents removed |",
             "|---|---|---|---|---|---|---|"]
    for row in table:
        if row["stage"] == "input":
            continue
        removed = row["docs_in"] - row["docs_out"]
        lines.append(f"| {row['stage']} | {row['domain']} | {row['docs_in']:,} | {row['docs_out']:,} | "
                     f"{row['bytes_in']:,} | {row['bytes_out']:,} | "
                     f"{removed:,} ({_percent(removed, row['docs_in'])}) |")
    return lines


def _ingest_lines(sources: dict) -> list[str]:
    """Records of each source that did not become documents, by defect (see `isoflop.corpus.DEFECTS`), with
    the first location of each; nothing when every record did."""
    from isoflop.corpus import DEFECTS

    rows = [f"| {name} | {reason} | {counts[reason]:,} | `{counts['examples'][reason][0]}` |"
            for name, counts in sources.items() for reason in DEFECTS if counts.get(reason)]
    if not rows:
        return []
    return ["### Ingest", "", "Records that did not become documents, per source (counted, not fatal):", "",
            "| source | defect | records | first at |", "|---|---|---|---|", *rows, ""]


def _quality_lines(quality: dict) -> list[str]:
    counts = [(domain, rule, n) for domain, rules in quality.get("removed_by_rule", {}).items()
              for rule, n in rules.items() if n]
    if not counts:
        return ["No document failed a quality rule.", ""]
    lines = ["Documents failing each quality rule (a document can fail several):", "",
             "| domain | rule | documents |", "|---|---|---|"]
    lines += [f"| {domain} | `{rule}` | {n:,} |" for domain, rule, n in counts]
    return lines + [""]


def _removed(stage: dict) -> int:
    return sum(row["docs_in"] - row["docs_out"] for row in stage["per_domain"].values())


def _pairs(heading: str, examples: list[dict], similarity: str | None) -> list[str]:
    """`heading` and one bullet per example pair, or nothing when there is no example."""
    if not examples:
        return []
    lines = [heading, ""]
    for example in examples:
        score = f" ({similarity} {example[similarity]:.4f})" if similarity else ""
        lines.append(f"- `{example['id']}` duplicates `{example['duplicate_of']}`{score}")
    return lines + [""]


def _draw(name: str, draw, figures_dir: Path, caption: str) -> list[str]:
    """Draw one figure and return its markdown, or nothing (logged) if it fails: the report must not be lost."""
    try:
        draw(figures_dir / name)
    except Exception as err:  # noqa: BLE001 - one broken figure must not lose the report
        log.warning("figure %s failed: %s", name, err)
        return []
    return [f"![{caption}]({figures_dir.name}/{name})", "", f"*{caption}*", ""]


def _duplicate_lines(stages: dict, figures_dir: Path) -> list[str]:
    from isoflop.curate.figures import plot_s_curve

    lines = []
    if "exact_dedup" in stages:
        exact = stages["exact_dedup"]
        lines += [f"Exact dedup: {_removed(exact):,} documents removed; {exact['duplicate_groups']:,} normalised "
                  "texts occur more than once and each is kept once, under its smallest id.", ""]
        lines += _pairs("For example:", exact["examples"], None)
    if "near_dup" in stages:
        near = stages["near_dup"]
        p = near["params"]
        lines += [f"Near-duplicate dedup (MinHash LSH): {_removed(near):,} documents removed; {p['ngram']}-word "
                  f"shingles, {p['num_perm']} permutations, {p['bands']} bands x {p['rows']} rows, candidates "
                  f"verified at an estimated Jaccard similarity of {p['threshold']} or more.", ""]
        lines += _pairs("The weakest merges:", near["examples"], "estimated_jaccard")
        lines += _draw(S_CURVE_FIGURE, lambda path: plot_s_curve(p["bands"], p["rows"], p["threshold"], path),
                       figures_dir, f"Probability that two documents become LSH candidates against their Jaccard "
                       f"similarity ({p['bands']} bands x {p['rows']} rows).")
    if "semantic_dedup" in stages:
        semantic = stages["semantic_dedup"]
        lines += [f"Semantic dedup (SemDeDup inside each cluster): {_removed(semantic):,} documents removed, each "
                  f"with a cosine similarity above {1 - semantic['eps']:.4g} to a kept document.", ""]
        lines += _pairs("The least similar pairs removed:", semantic["examples"], "cosine")
    return lines


def _cluster_lines(cluster: dict, figures_dir: Path, curated_dir: Path) -> list[str]:
    """The cluster table and map. Clusters are fitted before SemDeDup and SemDeDup removes documents inside
    them, so the table counts both stages and the map draws the kept documents: its legend's counts are the
    table's "kept" column."""
    from isoflop.curate.figures import plot_cluster_map

    terms = {int(c): words for c, words in cluster["top_terms"].items()}
    kept = pd.concat([pd.read_parquet(Path(curated_dir) / f"{split}.parquet", columns=MAP_COLUMNS)
                      for split in ("train", "val")], ignore_index=True)
    kept_sizes = kept["cluster"].value_counts()
    lines = [f"{cluster['n_clusters']} clusters ({cluster['method']} on `{cluster['embedder']}` embeddings) of the "
             "documents that survived exact and near-duplicate dedup (\"clustered\", before SemDeDup), and how "
             "many of each the curated splits keep (\"kept\", after SemDeDup):", "",
             "| cluster | clustered (before SemDeDup) | clustered, by domain | kept (after SemDeDup) | top terms |",
             "|---|---|---|---|---|"]
    for c, size in sorted((int(c), n) for c, n in cluster["sizes"].items()):
        domains = ", ".join(f"{d} {n}" for d, n in cluster["sizes_by_domain"].get(str(c), {}).items())
        lines.append(f"| {c} | {size:,} | {domains} | {int(kept_sizes.get(c, 0)):,} | {', '.join(terms.get(c, []))} |")
    lines.append("")
    if "balanced_sample" in cluster:
        lines += [f"Balanced sample over the cluster tree: {cluster['balanced_sample']:,} documents drawn.", ""]
    names = {c: ", ".join(words[:3]) for c, words in terms.items()}
    lines += _draw(CLUSTER_MAP_FIGURE, lambda path: plot_cluster_map(
        kept[["map_x", "map_y"]].to_numpy(), kept["cluster"].to_numpy(), path, names,
        title="Curated documents (after SemDeDup)"),
        figures_dir, "The curated documents (after SemDeDup; the cluster table's \"kept\" column) on the first two "
        "principal components of their embeddings, coloured by cluster and named by its top terms.")
    return lines


def curation_section(curation: dict, figures_dir, curated_dir) -> list[str]:
    """Markdown lines of the report's curation section, from `curation.json` (`curation`) and the curated
    folder (`curated_dir`, whose Parquet files hold the map coordinates); figures go to `figures_dir`."""
    figures_dir = Path(figures_dir)
    figures_dir.mkdir(parents=True, exist_ok=True)
    report = curation["curation"]
    stages = report["stages"]
    entering = sum(row["docs_in"] for row in report["table"] if row["stage"] == "input")
    kept = sum(entry["documents"] for split in curation["split"].values() for entry in split.values())
    lines = ["## Curation", "",
             f"{entering:,} documents in, {kept:,} kept ({_percent(kept, entering)}) after "
             f"{', '.join(s for s in stages if s != 'input')}, over {report.get('shards', 1)} shards.", ""]
    if report["alarms"]:
        lines += ["**Alarms:**", ""] + [f"- {alarm}" for alarm in report["alarms"]] + [""]
    lines += _stage_table(report["table"]) + [""]
    lines += _ingest_lines(curation["ingest"].get("sources", {}))
    if "quality" in stages:
        lines += ["### Quality rules", ""] + _quality_lines(stages["quality"])
    duplicates = _duplicate_lines(stages, figures_dir)
    if duplicates:
        lines += ["### Duplicates", ""] + duplicates
    if "cluster" in stages:
        lines += ["### Clusters", ""] + _cluster_lines(stages["cluster"], figures_dir, curated_dir)
    return lines
