from isoflop.workflow import logged

with logged(snakemake.log[0]):
    from isoflop.mix.search import final_stage

    final_stage(snakemake.input.fit, snakemake.input.data, snakemake.params.cfg, snakemake.params.data_id,
                snakemake.output[0])
