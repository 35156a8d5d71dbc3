from isoflop.workflow import logged

with logged(snakemake.log[0]):
    from isoflop.curate.stage import fit_embedding

    fit_embedding(snakemake.input.documents, [snakemake.input.removed], snakemake.params.curate,
                  snakemake.params.seed, model_out=snakemake.output[0])
