from isoflop.workflow import logged

with logged(snakemake.log[0]):
    from isoflop.layout import StudyLayout
    from isoflop.track import Tracking, sync_study_or_defer

    sync_study_or_defer(Tracking.of(snakemake.config), StudyLayout.of(snakemake.config), snakemake.input.plan,
                        snakemake.output[0], snakemake.config)
