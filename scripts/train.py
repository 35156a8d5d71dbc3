from isoflop.workflow import logged, progress_enabled

with logged(snakemake.log[0]):
    from isoflop.train.distributed import Parallel
    from isoflop.stages import planned_run, train_stage

    inputs = snakemake.input
    run = planned_run(inputs.plan, snakemake.wildcards.run_id, snakemake.params.spec)
    tracking = None
    if snakemake.config["tracking"]["enabled"] and snakemake.config["tracking"]["live"]:
        from isoflop.track import Tracking  # tracking settings are not rerun triggers (see track.smk)

        tracking = Tracking.of(snakemake.config)
    train_stage(
        run,
        None if run["trunk_id"] else inputs.data,
        snakemake.output.result,
        device=snakemake.params.device,
        trunk_runs=inputs.data if run["trunk_id"] else None,
        tracking=tracking,
        threads=max(1, snakemake.threads // snakemake.config["train"]["devices"]),  # per rank
        progress=progress_enabled(),
        # read here, not a param: when a state is saved never changes the result, so it must not retrain
        checkpoint_minutes=snakemake.config["train"]["checkpoint_minutes"],
        # read here, not a param: how many devices train a run changes its speed, not its result
        parallel=Parallel.of(snakemake.config["train"]),
    )
