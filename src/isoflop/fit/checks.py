"""Input checks shared by every fit: each failure is one line that names the column at fault."""

from __future__ import annotations

import numpy as np

from isoflop.errors import UserError


def positive_column(name: str, values) -> np.ndarray:
    """`values` as a float array, or UserError if any is missing, NaN, infinite or not positive."""
    try:
        array = np.asarray(values, dtype=float).ravel()
    except (TypeError, ValueError) as err:
        raise UserError(f"column {name!r} must be numeric ({err})") from None
    bad = ~np.isfinite(array)
    if bad.any():
        raise UserError(f"column {name!r} has {int(bad.sum())} missing or non-finite value(s), "
                        f"first at row {int(np.argmax(bad))}")
    if (array <= 0).any():
        first = int(np.argmax(array <= 0))
        raise UserError(f"column {name!r} must be positive; row {first} is {array[first]:g}")
    return array


def same_length(**columns: np.ndarray) -> int:
    """The common length of `columns`, or UserError naming the lengths."""
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) > 1:
        raise UserError(f"columns differ in length: {lengths}")
    return next(iter(lengths.values()))


def distinct_points(*columns: np.ndarray) -> int:
    """How many distinct rows the `columns` form together: repeats of one run add no information."""
    return len(np.unique(np.column_stack(columns), axis=0))


def enough_points(n_points: int, n_params: int, what: str, *, exact: bool = False) -> None:
    """UserError unless there are more distinct points than parameters (a residual degree of
    freedom), or, with `exact`, at least as many (the fit then interpolates)."""
    need = n_params if exact else n_params + 1
    if n_points < need:
        raise UserError(f"{what} has {n_params} free parameters but only {n_points} distinct points; "
                        f"it needs at least {need}")


def duplicate_rows(*columns: np.ndarray) -> list[str]:
    """A warning when rows repeat another exactly in every column (a run copied into the table)."""
    repeats = len(columns[0]) - len(np.unique(np.column_stack(columns), axis=0))
    if not repeats:
        return []
    return [f"{repeats} row(s) repeat another exactly: a copied run counts twice, which narrows the "
            "intervals without adding information; drop the copies"]


def fit_warnings(law: dict, exponents: tuple[str, ...], *, span_decades: float = 2.0,
                 wrong_sign_share: float = 0.05) -> list[str]:
    """Warnings about a fitted `law` dict that its numbers alone do not shout: a 95% interval
    spanning more than `span_decades` orders of magnitude (the data do not pin the parameter),
    and an exponent in `exponents` that is not positive in more than `wrong_sign_share` of the
    bootstrap fits (the data do not even pin its direction)."""
    warnings = []
    for name, interval in law["ci95"].items():
        if interval is None or None in interval:
            continue
        low, high = interval
        if low > 0 and high / low > 10**span_decades:
            warnings.append(f"the 95% interval of {name} spans {np.log10(high / low):.1f} orders of magnitude "
                            f"[{low:.3g}, {high:.3g}]: the data do not pin it down")
    samples = law["bootstrap"]["samples"] or {}
    for name in exponents:
        values = np.asarray(samples.get(name, []), dtype=float)
        values = values[np.isfinite(values)]
        if len(values) and np.mean(values <= 0) > wrong_sign_share:
            warnings.append(f"exponent {name} is not positive in {np.mean(values <= 0):.0%} of the bootstrap "
                            "fits: the data do not settle whether loss falls with it")
    return warnings


FLOOR_AT_ZERO = 1e-6  # an irreducible loss E below this share of the smallest loss: E went to its bound 0


def floor_at_zero(params: dict, loss: np.ndarray) -> list[str]:
    """A warning when a law's irreducible loss E sits at its lower bound 0: the data show no floor, so the
    law lets loss fall without limit and extrapolates only as far as that is true."""
    floor = params.get("E")
    if floor is None or not np.isfinite(floor) or floor > FLOOR_AT_ZERO * float(np.min(loss)):
        return []
    return [f"parameter E sits at its lower bound 0 (E = {floor:.2g}): the data show no loss floor, so the law "
            "falls without limit beyond them; treat its extrapolations with care or fix E (--fix E=...)"]


def to_jsonable(value):
    """Numpy scalars and arrays as plain Python, non-finite floats as None (valid JSON)."""
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [to_jsonable(item) for item in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    return value
