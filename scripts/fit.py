from isoflop.workflow import logged

with logged(snakemake.log[0]):
    from isoflop.stages import fit_stage

    fit_stage(snakemake.input.runs, snakemake.output[0], **snakemake.params, n_jobs=snakemake.threads,
              plan_path=snakemake.input.plan, curve_paths=snakemake.input.curves)
