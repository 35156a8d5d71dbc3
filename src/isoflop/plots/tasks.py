"""The downstream-task figure of the report."""

from __future__ import annotations


def task_bpb_figure(runs, keys: list[str], path) -> None:
    """Task bpb of the correct answer against training compute, one colour per task setting."""
    import matplotlib.pyplot as plt

    from isoflop.plots import axis_labels, save_figure

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for key in keys:
        column = f"task_{key}_bpb"
        ax.scatter(runs["C"], runs[column], s=14, label=key)
    ax.set_xscale("log")
    convention = runs["flops_convention"].iloc[0] if "flops_convention" in runs and len(runs) else None
    ax.set_xlabel(axis_labels(convention)[1])
    ax.set_ylabel("task bpb of the correct answer")
    ax.legend(fontsize=7)
    save_figure(fig, path)
