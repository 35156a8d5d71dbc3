from isoflop.workflow import logged, progress_enabled

with logged(snakemake.log[0]):
    from isoflop.stages import train_stage

    train_stage(
        snakemake.wildcards.run_id,
        snakemake.input.tokens,
        snakemake.output.result,
        snakemake.config,
        threads=snakemake.threads,
        progress=progress_enabled(),
    )
