from isoflop.workflow import logged

with logged(snakemake.log[0]):
    from isoflop.curate.stage import dedup_decisions

    dedup_decisions(snakemake.input.hashes, snakemake.input.signatures, snakemake.params.curate,
                    removed_out=snakemake.output.removed, details_out=snakemake.output.details)
