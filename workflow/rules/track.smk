# MLflow is a view of the files under results/: every run logged by the sync at the end (and, with
# `tracking.live`, by each training job as it finishes; a failed live log is never fatal, and the sync repairs
# it). No job that training depends on talks to the store, so an unreachable server never holds training up;
# a sync that could not reach the store marks its output pending and the next run of the workflow syncs again.
# Tracking settings are deliberately not params: pointing a study at another store changes no result, so it
# reruns nothing (`isoflop track-sync` fills a new store). Scripts read them as `Tracking.of(snakemake.config)`,
# the one place jobs look at the config itself.
from isoflop.track import Tracking, corrupt_store_notice, sync_pending

if TRACKING and sync_pending(LAYOUT.tracked):
    LAYOUT.tracked.unlink()  # holds only the reason the last sync failed: without it track_study runs again
# a corrupt SQLite store is said on every run (one with nothing to do too), with the command that repairs it;
# the process that started the workflow says it, not each job that parses the Snakefile again
if TRACKING and not (workflow.remote_exec or workflow.subprocess_exec):
    STORE_NOTICE = corrupt_store_notice(Tracking.of(config), workflow.configfiles)
    if STORE_NOTICE:
        print(STORE_NOTICE, file=sys.stderr)


rule track_study:
    input:
        plan=LAYOUT.plan,
        results=RESULTS,
        curves=CURVES,
        runs=LAYOUT.runs_table,
        laws=LAYOUT.laws,
        report=LAYOUT.report,
        figures=LAYOUT.figures,
        curated=CURATED,
        mix=MIX_TARGETS,
        forecasts=FORECAST_SCORES,
        forecast_results=FORECAST_RESULTS,
    output:
        LAYOUT.tracked,
    log:
        LAYOUT.log("track_study"),
    benchmark:
        LAYOUT.benchmark("track_study")
    conda:
        "../../envs/track.yaml"
    script:
        "../../scripts/track_study.py"


TRACKING_TARGETS = [LAYOUT.tracked] if TRACKING else []
