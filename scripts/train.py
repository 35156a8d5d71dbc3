from isoflop.workflow import logged, progress_enabled

with logged(snakemake.log[0]):
    from isoflop.stages import planned_run, train_stage

    inputs = snakemake.input
    tracking = None
    if snakemake.config["tracking"]["enabled"] and snakemake.config["tracking"]["live"]:
        from isoflop.track import Tracking  # tracking settings are not rerun triggers (see track.smk)

        tracking = Tracking.of(snakemake.config)
    train_stage(
        planned_run(inputs.plan, snakemake.wildcards.run_id, snakemake.params.spec),
        inputs.tokens,
        snakemake.output.result,
        device=snakemake.params.device,
        branches_dir=inputs.branches[0] if inputs.branches else None,
        tracking=tracking,
        threads=snakemake.threads,
        progress=progress_enabled(),
    )
