"""Task scaling laws (docs/tasks.md): `ladder` reads runs (the OLMo ladder's published CSVs, or a study's runs
table) into per-task series of task bits per byte and accuracy; `law` fits the chained task law of Bhagia et al.
2024 (task bpb from N and D, then accuracy as a sigmoid of task bpb) with bootstrap prediction intervals and
backtests it against the direct form; `report` is the report's task section; `cli` is `isoflop tasks fit|predict`.
The evaluation of a model on tasks is `isoflop.tasks`, a layer below training.
"""
