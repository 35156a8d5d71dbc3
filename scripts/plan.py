from isoflop.workflow import logged

with logged(snakemake.log[0]):
    from isoflop.stages import plan_stage

    plan_stage(snakemake.params.plan, snakemake.output[0])
