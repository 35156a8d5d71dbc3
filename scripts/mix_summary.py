from isoflop.workflow import logged

with logged(snakemake.log[0]):
    from isoflop.mix.search import summary_stage

    inputs = snakemake.input
    summary_stage(inputs.fits, inputs.runs, inputs.results, snakemake.params.cfg, snakemake.output[0])
