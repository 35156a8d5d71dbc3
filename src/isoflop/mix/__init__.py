"""Data mixtures from proxy runs: predictors of loss from mixture weights, a constrained proposer, and
decision accuracy across scales.

- `mixture`: a mixture's definition (natural, uniform, explicit weights) checked, resolved and hashed.
- `search`: the workflow's search stages (rounds of proxies, fits, verification, scaling).
- `predictors`: LightGBM (RegMix), the Data Mixing Laws form, a log-linear ridge baseline; cross-validation.
- `propose`: Dirichlet sampling around a prior, and the constrained choice of a mixture from a predictor.
- `decide`: how often the order of mixtures at small scale holds at large scale (DataDecide).

Arrays throughout: one row per mixture, one column per group (domain or cluster), rows summing to 1.
Modules import lightgbm and scipy inside their functions, so importing the package is cheap.
"""
