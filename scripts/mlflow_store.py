from isoflop.workflow import logged

with logged(snakemake.log[0]):
    from isoflop.track import Tracking, create_store

    create_store(Tracking.of(snakemake.config), snakemake.output[0])
