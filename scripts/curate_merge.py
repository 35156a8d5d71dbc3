from isoflop.workflow import logged

with logged(snakemake.log[0]):
    from isoflop.curate.stage import merge_curated

    inputs = snakemake.input
    merge_curated(inputs.manifest, inputs.ledgers, inputs.documents, inputs.embedded, inputs.removed, inputs.details,
                  snakemake.params.curate, snakemake.params.seed, snakemake.output[0])
