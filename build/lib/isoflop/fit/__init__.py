"""Scaling-law fitting: Chinchilla's L(N, D), IsoFLOP profiles, training-curve envelopes, loss
curves and hyperparameter laws, each with bootstrap intervals, plus the study-level fit and
extrapolation check the workflow writes as `laws.json`."""

from isoflop.fit.envelope import fit_envelope
from isoflop.fit.hyper import fit_batch_law, fit_hyperparameter_law, fit_lr_law
from isoflop.fit.isoflop import fit_isoflop, isoflop_allocation
from isoflop.fit.power import fit_chinchilla, fit_curve
from isoflop.fit.predict import predict
from isoflop.fit.study import fit_study

__all__ = [
    "fit_batch_law",
    "fit_chinchilla",
    "fit_curve",
    "fit_envelope",
    "fit_hyperparameter_law",
    "fit_isoflop",
    "fit_lr_law",
    "fit_study",
    "isoflop_allocation",
    "predict",
]
