from isoflop.workflow import logged

with logged(snakemake.log[0]):
    from isoflop.mix.mixture import check_stage

    params = snakemake.params
    check_stage(snakemake.input[0], params.mixture, params.tokens, snakemake.output[0],
                max_epochs=params.max_epochs, allow=params.allow_repeats)
