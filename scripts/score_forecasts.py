from isoflop.workflow import logged

with logged(snakemake.log[0]):
    from isoflop.ledger import score_stage

    score_stage(snakemake.input.laws, snakemake.input.results, snakemake.output[0])
