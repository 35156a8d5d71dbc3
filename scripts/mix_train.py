from isoflop.workflow import logged, progress_enabled

with logged(snakemake.log[0]):
    from pathlib import Path

    from isoflop.stages import resolve_spec
    from isoflop.tokens import read_meta
    from isoflop.train.loop import train_run

    data = snakemake.input.data
    train_run(resolve_spec(snakemake.params.spec, read_meta(data)), data, Path(snakemake.output.result).parent,
              threads=snakemake.threads, device=snakemake.params.device, progress=progress_enabled(),
              window_losses=True,
              # read here, not a param: when a state is saved never changes the result, so it must not retrain
              checkpoint_minutes=snakemake.config["train"]["checkpoint_minutes"])
