from isoflop.workflow import logged, progress_enabled

with logged(snakemake.log[0]):
    from isoflop.corpus import ingest

    manifest = ingest(snakemake.config["corpus"], snakemake.output[0], progress=progress_enabled())
    print(f"ingested {manifest['documents']} documents, {manifest['bytes']:,} bytes")
