"""Figures, one function per figure, each drawn from tables the study wrote (never from a live model).

Every figure of the project (study, laws, curation) is written by `save_figure`, so they share one
resolution and one layout step, and each PNG has a vector SVG beside it for papers and slides.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

DPI = 120  # the resolution every figure has always had but the loss curves (130)

# What N and C mean under each of `isoflop.plan.CONVENTIONS`: a reader of an axis must know whether attention
# FLOPs and embeddings are counted, since they shift every exponent at small sizes.
CONVENTION_LABELS = {
    "nonembed_head_attention": ("non-embedding + head parameters", "6ND + attention FLOPs"),
    "nonembed_head": ("non-embedding + head parameters", "6ND FLOPs"),
    "nonembed": ("non-embedding parameters", "6ND FLOPs"),
    "total": ("all parameters", "6ND FLOPs"),
}


def axis_labels(convention: str | None) -> tuple[str, str]:
    """The N and C axis labels of a `flops_convention` (laws.json's); generic ones for None (CSV fits)."""
    n_name, c_name = CONVENTION_LABELS.get(convention, ("parameters", "FLOPs"))
    return f"N ({n_name})", f"training compute C ({c_name})"


def interval_text(value: float, ci) -> str:
    """`value` and its 95% interval as titles and legends state them: "0.53 [0.43, 0.68]"."""
    if not ci or None in ci:
        return f"{value:.2f} (no interval)"
    return f"{value:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]"


def save_figure(fig, path) -> Path:
    """Lay out `fig`, write it to `path` (a PNG, at `DPI`) and an SVG beside it, close it; returns `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    fig.savefig(path.with_suffix(".svg"))
    plt.close(fig)
    return path
