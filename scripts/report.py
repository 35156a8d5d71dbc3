from isoflop.workflow import logged

with logged(snakemake.log[0]):
    from isoflop.report import write_report

    write_report(
        snakemake.input.runs, snakemake.input.laws, snakemake.input.curated, snakemake.input.plan,
        snakemake.output.report, snakemake.output.figures, snakemake.config,
    )
