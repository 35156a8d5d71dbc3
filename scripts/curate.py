from isoflop.workflow import logged, progress_enabled

with logged(snakemake.log[0]):
    from isoflop.stages import curate_stage

    curate_stage(snakemake.input[0], snakemake.output[0], snakemake.config, progress=progress_enabled())
