from isoflop.workflow import logged

with logged(snakemake.log[0]):
    from isoflop.stages import runs_table_stage

    runs_table_stage(snakemake.input.plan, snakemake.input.results, snakemake.output[0])
