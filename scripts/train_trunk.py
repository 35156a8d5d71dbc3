from isoflop.workflow import logged, progress_enabled

with logged(snakemake.log[0]):
    from isoflop.stages import trunk_stage

    trunk_stage(
        snakemake.params.spec,
        snakemake.params.branch_steps,
        snakemake.input[0],
        snakemake.output[0],
        snakemake.config,
        threads=snakemake.threads,
        progress=progress_enabled(),
    )
