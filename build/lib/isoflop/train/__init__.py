"""Training the small language models of a study.

    model.py       ModelConfig (one size knob: d_model) and the Transformer
    accounting.py  param_counts, flops_per_token: analytic, under each convention the literature uses
    schedule.py    lr_schedule: cosine, wsd (1-sqrt or linear decay), constant
    spec.py        RunSpec (a run's parsed spec), branch_step and trunk_spec for wsd branching
    data.py        meta.json, BatchSampler (data order = f(seed, step)), evaluation windows
    checkpoint.py  atomic writes and saved training states
    loop.py        train_run, train_trunk
"""
