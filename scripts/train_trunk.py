from isoflop.workflow import logged, progress_enabled

with logged(snakemake.log[0]):
    from isoflop.train.distributed import Parallel
    from isoflop.stages import family_stage

    params = snakemake.params
    family_stage(
        params.spec,
        params.branches,
        snakemake.input[0],
        snakemake.output.result,
        snakemake.output.runs,
        params.work,
        device=params.device,
        threads=max(1, snakemake.threads // snakemake.config["train"]["devices"]),  # per rank
        progress=progress_enabled(),
        # read here, not a param: when a state is saved never changes the result, so it must not retrain
        checkpoint_minutes=snakemake.config["train"]["checkpoint_minutes"],
        # read here, not a param: how many devices train a run changes its speed, not its result
        parallel=Parallel.of(snakemake.config["train"]),
    )
