"""The figures' captions for `snakemake --report`, read where the workflow is parsed (kept light: no imports)."""

from __future__ import annotations

from pathlib import Path


class FigureCaptions(dict):
    """Figure name -> its caption (workflow/report/figures/<name>.rst). A rule passes it as a param so that an
    edited caption reruns the report job (Snakemake compares params by their repr: the whole text), while the HTML
    report, which prints every job's params beside each of its files, shows one line instead of every caption."""

    @classmethod
    def read(cls, folder: Path) -> FigureCaptions:
        return cls({path.stem: path.read_text() for path in sorted(Path(folder).glob("*.rst"))})

    def __str__(self) -> str:
        return f"{len(self)} figure captions"


# The HTML report's categories in the order a reader needs them (its menu sorts them by name, hence the numbers):
# the decision, the laws it rests on, whether to believe them, the mixture, the runs, the curation behind them.
SUMMARY, LAWS, DIAGNOSTICS, MIXTURE, TRAINING, CURATION = (
    "1. Summary", "2. Laws", "3. Diagnostics", "4. Mixture", "5. Training", "6. Curation")
DIAGNOSTIC_FIGURES = ("backtest", "extrapolation", "reliability", "baseline_comparison")
# Within the laws, the allocation first (files are sorted by name within a subcategory)
ALLOCATION_FIGURES = ("frontier", "tokens_per_param")


def figure_category(name: str) -> str:
    """The HTML report's category of the figure `name` (its file name without .png)."""
    if name.startswith("curation_"):
        return CURATION
    if name.startswith("mix_"):
        return MIXTURE
    if name in ("loss_curves", "task_bpb"):
        return TRAINING
    return DIAGNOSTICS if name in DIAGNOSTIC_FIGURES else LAWS


def figure_subcategory(name: str) -> str:
    """The subcategory that orders a category's figures: a law's allocation before its fits."""
    if figure_category(name) != LAWS:
        return "figures"
    return "1. allocation" if name in ALLOCATION_FIGURES else "2. fits"
