from isoflop.workflow import logged

with logged(snakemake.log[0]):
    from isoflop.curate.stage import fit_embedding

    fit_embedding(snakemake.input.documents, [snakemake.input.removed], snakemake.config["curate"],
                  snakemake.config["seed"], model_out=snakemake.output[0])
