from isoflop.workflow import logged

with logged(snakemake.log[0]):
    from isoflop.curate.stage import cluster_decisions

    cluster_decisions(snakemake.input.embedded, snakemake.input.terms, snakemake.input.model,
                      snakemake.params.curate, snakemake.params.seed, removed_out=snakemake.output.removed,
                      details_out=snakemake.output.details)
