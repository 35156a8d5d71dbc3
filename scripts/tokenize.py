from isoflop.workflow import logged

with logged(snakemake.log[0]):
    from isoflop.stages import tokenize_stage

    tokenize_stage(snakemake.input[0], snakemake.output[0], snakemake.params.tokenizer)
