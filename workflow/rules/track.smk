# MLflow is a view of the files under results/: its store created by one job, every run logged by the sync
# at the end (and, with `tracking.live`, by each training job as it finishes; a failed live log is never
# fatal, and the sync repairs it). Tracking settings are deliberately not params: pointing a
# study at another store changes no result, so it reruns nothing (`isoflop track-sync` fills a new store).
# Scripts read them as `Tracking.of(snakemake.config)`, the one place jobs look at the config itself.
rule mlflow_store:
    output:
        LAYOUT.store_marker,
    log:
        LAYOUT.log("mlflow_store"),
    conda:
        "../../envs/track.yaml"
    script:
        "../../scripts/mlflow_store.py"


rule track_study:
    input:
        store=ancient(LAYOUT.store_marker),
        plan=LAYOUT.plan,
        results=RESULTS,
        curves=CURVES,
        runs=LAYOUT.runs_table,
        laws=LAYOUT.laws,
        report=LAYOUT.report,
        figures=LAYOUT.figures,
        curated=CURATED,
        mix=MIX_TARGETS,
    output:
        LAYOUT.tracked,
    log:
        LAYOUT.log("track_study"),
    conda:
        "../../envs/track.yaml"
    script:
        "../../scripts/track_study.py"


TRACKING_TARGETS = [LAYOUT.tracked] if TRACKING else []
