from isoflop.workflow import logged

with logged(snakemake.log[0]):
    from isoflop.stages import cluster_tokens_stage

    cluster_tokens_stage(snakemake.input.curated, snakemake.input.tokens, snakemake.output[0])
