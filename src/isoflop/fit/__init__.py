"""Scaling-law fitting: Chinchilla's L(N, D), the over-trained law, IsoFLOP profiles, training-curve
envelopes, loss curves and hyperparameter laws, each with bootstrap intervals, plus the study-level
fit, backtests and extrapolation check the workflow writes as `laws.json`.

The names below load on first use (PEP 562), so `import isoflop.fit.cli` and `isoflop fit --help`
do not pay for scipy and statsmodels.
"""

from importlib import import_module

# `predict` is also a submodule's name: importing isoflop.fit.predict anywhere would bind the module
# here and hide a lazy function of that name, so the function (numpy only, cheap) is bound eagerly.
from isoflop.fit.predict import predict, predict_intervals

_HOMES = {
    "fit_batch_law": "hyper",
    "fit_chinchilla": "power",
    "fit_curve": "power",
    "fit_envelope": "envelope",
    "fit_hyperparameter_law": "hyper",
    "fit_isoflop": "isoflop",
    "fit_law": "constrained",
    "fit_lr_law": "hyper",
    "fit_study": "study",
    "isoflop_allocation": "isoflop",
}

__all__ = sorted([*_HOMES, "predict", "predict_intervals"])


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'isoflop.fit' has no attribute {name!r}")
    return getattr(import_module(f"isoflop.fit.{_HOMES[name]}"), name)
