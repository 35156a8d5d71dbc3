from isoflop.workflow import logged, progress_enabled

with logged(snakemake.log[0]):
    from isoflop.stages import trunk_stage

    params = snakemake.params
    trunk_stage(
        params.spec,
        params.branch_steps,
        snakemake.input[0],
        snakemake.output.result,
        snakemake.output.branches,
        device=params.device,
        threads=snakemake.threads,
        progress=progress_enabled(),
    )
