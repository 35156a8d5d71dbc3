from pathlib import Path

from isoflop.workflow import logged, progress_enabled

with logged(snakemake.log[0]):
    from isoflop.corpus import ingest

    out_dir = Path(snakemake.output.manifest).parent
    manifest = ingest(snakemake.params.corpus, out_dir, progress=progress_enabled())
    print(f"ingested {manifest['documents']} documents, {manifest['bytes']:,} bytes, "
          f"{len(manifest['shards'])} shards")
