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


def save_figure(fig, path) -> Path:
    """Lay out `fig`, write it to `path` (a PNG, at `DPI`) and an SVG beside it, close it; returns `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    fig.savefig(path.with_suffix(".svg"))
    plt.close(fig)
    return path
