from isoflop.workflow import logged

with logged(snakemake.log[0]):
    from isoflop.track import sync_study

    sync_study(snakemake.config, snakemake.input.runs, snakemake.input.laws, snakemake.output[0])
