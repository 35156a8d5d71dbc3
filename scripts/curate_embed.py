from isoflop.workflow import logged

with logged(snakemake.log[0]):
    from isoflop.curate.stage import embed_shard

    embed_shard(snakemake.input.documents, [snakemake.input.removed], snakemake.input.model,
                snakemake.params.curate, embedded_out=snakemake.output.embedded, terms_out=snakemake.output.terms)
