"""The verdict: which approach a study trusts (one rule for the report, its figures, `isoflop predict` and
MLflow), from the scores laws.json holds for each law on budgets it was not fitted to."""

from __future__ import annotations

STUDY_LAWS = ("chinchilla", "isoflop")  # a study's loss laws: approach 3 (Chinchilla fit), approach 2 (IsoFLOP)
MIN_COVERAGE = 0.8  # the share of held-out runs a law's 95% prediction intervals must cover to be called honest
# Where laws.json scores each law on budgets it was not fitted to, most telling first: the backtest pools
# every expanding-window fold; the extrapolation check holds out the largest budget only.
SCORES = (("backtest", "the backtest"), ("extrapolation", "the extrapolation check"))


def trusted_approach(laws: dict) -> tuple[str | None, str]:
    """The approach a study's laws.json trusts, and why; None where no loss law was fitted.

    Only the loss laws (approach 2 IsoFLOP, approach 3 Chinchilla) can be trusted: the envelope predicts no loss.
    Of the fitted ones, the law with the smaller mean |relative error| on budgets it was not fitted to (the
    backtest, else the extrapolation check), among those whose 95% prediction intervals covered at least
    MIN_COVERAGE of the held-out runs where any did: a law whose intervals are too narrow cannot be planned
    with however close its point. Without scores, approach 3 (the one with a loss floor)."""
    fitted = [name for name in STUDY_LAWS if laws.get(name)]
    if not fitted:
        return None, "no loss law was fitted"
    if len(fitted) == 1:
        return fitted[0], "the only law fitted"
    for section, what in SCORES:
        entries = {name: scored(laws, section, name) for name in fitted}
        if any(entry.get("mean_abs_rel_error") is None for entry in entries.values()):
            continue
        honest = [name for name in fitted if (entries[name].get("coverage95") or 0.0) >= MIN_COVERAGE]
        pool = honest if honest else fitted
        best = min(pool, key=lambda name: entries[name]["mean_abs_rel_error"])
        scores = ", ".join(f"{name} {entries[name]['mean_abs_rel_error']:.2%}" for name in fitted)
        why = f"the smaller mean |relative error| in {what}: {scores}"
        if best != min(fitted, key=lambda name: entries[name]["mean_abs_rel_error"]):
            why = (f"the only law whose 95% prediction intervals covered {MIN_COVERAGE:.0%} of the held-out runs in "
                   f"{what} (mean |relative error| {scores})")
        return best, why
    return "chinchilla", "laws.json scores neither law on held-out budgets; chinchilla by default"


def scored(laws: dict, section: str, law: str) -> dict:
    """A law's entry in laws.json's score `section` (mean_abs_rel_error, coverage95), {} where it has none."""
    entry = laws.get(section) or {}
    if section == "extrapolation":
        entry = entry.get("laws") or {}
    return entry.get(law) or {}


def score(laws: dict, section: str, law: str) -> float | None:
    return scored(laws, section, law).get("mean_abs_rel_error")
