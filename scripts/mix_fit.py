from isoflop.workflow import logged

with logged(snakemake.log[0]):
    from isoflop.mix.search import fit_stage

    inputs = snakemake.input
    fit_stage(int(snakemake.wildcards.round), inputs.runs, inputs.results,
              inputs.previous[0] if inputs.previous else None, inputs.data, snakemake.params.cfg, snakemake.output[0])
