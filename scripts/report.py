from isoflop.workflow import logged

with logged(snakemake.log[0]):
    from isoflop.report import write_report

    inputs, params = snakemake.input, snakemake.params
    write_report(
        inputs.runs, inputs.laws, inputs.curated, inputs.plan, inputs.curves, inputs.trunks, params.benchmarks,
        snakemake.output.report, snakemake.output.figures, study=params.study, ground_truth=params.ground_truth,
        mixed_sources=params.mixed_sources, baseline=inputs.baseline[0] if inputs.baseline else None,
        mix_summary=inputs.mix[0] if inputs.mix else None, tokens_dir=inputs.tokens,
        forecast_scores=inputs.forecasts[0] if inputs.forecasts else None,
    )
