"""Downstream tasks: task scaling laws fitted from a model ladder (Bhagia et al. 2024).

`ladder` reads runs (the OLMo ladder's published CSVs, or a study's runs table) into per-task series of task
bits per byte and accuracy; `law` fits step 1 (task bpb as L(N, D)), step 2 (accuracy as a sigmoid of task bpb)
and chains them, with bootstrap prediction intervals; `cli` is `isoflop tasks fit|predict`.
"""
