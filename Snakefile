# isoflop: one scaling-law study as a DAG (see README.md).
#   corpus -> curate -> tokenize -> train (one job per run) -> runs table -> fit -> figures + report
#   with the MLflow view synced at the end (no job that training needs talks to the tracking store).
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/fit.smk"
include: "workflow/rules/track.smk"
include: "workflow/rules/mix.smk"


rule all:
    input:
        LAYOUT.report,
        TRACKING_TARGETS,
        # Every run's and trunk's result is a target in its own right, so deleting one rebuilds it (Snakemake
        # does not look behind an up-to-date runs table or report for a missing input).
        RESULTS,
        TRUNK_RESULTS,
        MIX_TARGETS,
    default_target: True
