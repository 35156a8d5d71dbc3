"""Figures, one function per figure, each drawn from tables the study wrote (never from a live model)."""

import matplotlib

matplotlib.use("Agg")
