from isoflop.workflow import logged

with logged(snakemake.log[0]):
    from isoflop.track import create_store

    create_store(snakemake.config, snakemake.output[0])
