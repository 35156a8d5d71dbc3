from isoflop.workflow import logged

with logged(snakemake.log[0]):
    from isoflop.mix.search import round_stage

    previous = snakemake.input.previous
    round_stage(int(snakemake.wildcards.round), snakemake.input.data, previous[0] if previous else None,
                snakemake.params.cfg, snakemake.params.data_id, snakemake.output[0])
