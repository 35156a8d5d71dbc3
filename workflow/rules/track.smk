# MLflow is a view of the files under results/: created once before any training job (concurrent first
# writers race on a fresh SQLite schema), written by each training job, and synced at the end so that a
# run whose live logging failed is still tracked. Tracking settings stay out of `params:` (rerun triggers).
rule mlflow_store:
    output:
        STORE_MARKER,
    log:
        STUDY / "logs" / "mlflow_store.log",
    conda:
        "../../envs/track.yaml"
    script:
        "../../scripts/mlflow_store.py"


rule track_study:
    input:
        store=ancient(STORE_MARKER),
        runs=STUDY / "runs.parquet",
        laws=STUDY / "laws.json",
        report=STUDY / "report.md",
        curated=CURATED,
    output:
        STUDY / "mlflow" / "tracked.json",
    log:
        STUDY / "logs" / "track_study.log",
    conda:
        "../../envs/track.yaml"
    script:
        "../../scripts/track_study.py"


TRACKING_TARGETS = [STUDY / "mlflow" / "tracked.json"] if TRACKING else []
