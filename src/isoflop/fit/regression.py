"""Small regressions shared by the IsoFLOP and hyperparameter laws: grouped parabolas with the
vertex's interval, and lines in log space, each both once (statsmodels) and per bootstrap resample
(vectorised weighted least squares, where the weights are resample multiplicities)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from isoflop.errors import UserError

MIN_DISTINCT = 3  # a parabola needs three distinct abscissae


def group_labels(values: np.ndarray, gap_dex: float = 0.1) -> np.ndarray:
    """Integer labels grouping `values` whose sorted log10 neighbours are within `gap_dex`.

    Achieved FLOPs scatter around the planned budget (and points read off a figure scatter more),
    so budgets are the clusters of log C separated by gaps wider than `gap_dex` (0.1 dex = 26%).
    """
    log_values = np.log10(values)
    order = np.argsort(log_values)
    breaks = np.diff(log_values[order]) > gap_dex
    labels = np.empty(len(values), dtype=int)
    labels[order] = np.concatenate([[0], np.cumsum(breaks)])
    return labels


@dataclass(frozen=True)
class Parabola:
    """y = c0 + c1 u + c2 u^2 fitted to one group; u is a log (of N, of a learning rate...)."""

    coefficients: np.ndarray  # c0, c1, c2 in u itself
    vertex: float  # argmin u* (meaningful when convex)
    vertex_ci: tuple[float, float]  # Fieller 95% interval for u*; nan where unbounded
    y_at_vertex: float
    convex: bool
    inside: bool  # u* strictly inside the group's range of u

    @property
    def minimum_at_edge(self) -> bool:
        """True when the group does not bracket a minimum: not convex, or vertex at or past an edge."""
        return not (self.convex and self.inside)


def fit_parabola(u: np.ndarray, y: np.ndarray, level: float = 0.95) -> Parabola:
    """OLS parabola of `y` in `u` (centred for conditioning) with Fieller's interval for the vertex.

    Fieller's interval for the ratio -c1 / (2 c2) is honest where the delta method is not: when the
    curvature is not clearly positive the interval is unbounded (nan ends), not falsely narrow.
    It needs a residual degree of freedom (4 distinct points or more); with exactly 3 it is nan.
    """
    import statsmodels.api as sm  # statsmodels and scipy.stats take seconds to import: only fits pay
    from scipy import stats
    centre = u.mean()
    design = np.column_stack([np.ones_like(u), u - centre, (u - centre) ** 2])
    model = sm.OLS(y, design).fit()
    b0, b1, b2 = model.params
    convex = b2 > 0
    vertex_centred = -b1 / (2 * b2) if b2 != 0 else np.nan
    interval = (np.nan, np.nan)
    if model.df_resid >= 1:
        t = stats.t.ppf(0.5 + level / 2, model.df_resid)
        low, high = _fieller(b1, b2, np.asarray(model.cov_params())[1:, 1:], t)
        interval = (low + centre, high + centre)
    coefficients = np.array([b0 - b1 * centre + b2 * centre**2, b1 - 2 * b2 * centre, b2])
    return Parabola(
        coefficients=coefficients,
        vertex=vertex_centred + centre,
        vertex_ci=interval,
        y_at_vertex=b0 - b1**2 / (4 * b2) if b2 != 0 else np.nan,
        convex=bool(convex),
        inside=bool(u.min() < vertex_centred + centre < u.max()),
    )


def parabolas_by_group(
    labels: np.ndarray,
    u: np.ndarray,
    y: np.ndarray,
    describe: Callable[[np.ndarray], str],
    warnings: list[str],
    window: int | None = None,
) -> list[tuple[object, np.ndarray, Parabola]]:
    """(label, rows, parabola of y in u) per group; a group with too few distinct u is skipped
    with a warning that starts with `describe(rows)` (which names the group for a person).

    With `window`, each parabola is local: fitted only to the rows `around_minimum` returns, and
    `rows` are those rows. Otherwise it spans the whole group."""
    fitted = []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        distinct = len(np.unique(u[rows]))
        if distinct < MIN_DISTINCT:
            warnings.append(f"{describe(rows)}: {distinct} distinct value(s), a parabola needs {MIN_DISTINCT}; skipped")
            continue
        if window is not None:
            rows = rows[around_minimum(u[rows], y[rows], window)]
            if len(np.unique(u[rows])) <= MIN_DISTINCT < distinct:
                warnings.append(f"{describe(rows)}: its window holds only {MIN_DISTINCT} sizes (the minimum is one "
                                "size from the sweep's edge), which the parabola interpolates: its vertex has no "
                                "measured noise; add sizes on the short side")
        fitted.append((label, rows, fit_parabola(u[rows], y[rows])))
    return fitted


def around_minimum(u: np.ndarray, y: np.ndarray, window: int) -> np.ndarray:
    """Mask of the points at the distinct u within `window` ranks either side of the one of lowest mean y.

    The window is symmetric: it takes min(window, sizes left, sizes right) each side, so a minimum near
    an edge gets a narrower window, not one slid inwards (a lopsided window leans the parabola toward its
    longer flank; see DEFAULT_WINDOW in `isoflop.fit.isoflop` for the experiment). A minimum at the edge
    itself keeps the inward window of min(2 window + 1, distinct u) sizes, whose parabola then shows the
    minimum is not bracketed.
    """
    if window < 1:
        raise UserError(f"the parabola window must be at least 1 neighbour each side, got {window}")
    values, index = np.unique(u, return_inverse=True)
    mean_y = np.bincount(index, weights=y) / np.bincount(index)
    lowest = int(np.argmin(mean_y))
    half = min(window, lowest, len(values) - 1 - lowest)
    if half == 0:
        width = min(2 * window + 1, len(values))
        start = 0 if lowest == 0 else len(values) - width
        return (index >= start) & (index < start + width)
    return (index >= lowest - half) & (index <= lowest + half)


def _fieller(b1: float, b2: float, cov: np.ndarray, t: float) -> tuple[float, float]:
    """The set of v with (b1 + 2 b2 v)^2 <= t^2 Var(b1 + 2 b2 v), when it is a bounded interval."""
    quad = 4 * (b2**2 - t**2 * cov[1, 1])
    lin = 4 * (b1 * b2 - t**2 * cov[0, 1])
    const = b1**2 - t**2 * cov[0, 0]
    disc = lin**2 - 4 * quad * const
    if quad <= 0 or disc < 0:
        return np.nan, np.nan
    root = np.sqrt(disc)
    return (-lin - root) / (2 * quad), (-lin + root) / (2 * quad)


def resampled_vertices(
    u: np.ndarray, y: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Vertex u*, y there, curvature c2 and whether u* is a bracketed minimum, per resample.

    `counts` (B, n) are resample multiplicities; a weighted least-squares fit with them equals
    OLS on the resampled points. A resample holding fewer than 3 distinct u (replicated runs share a u, so
    3 distinct rows are not enough) has no parabola: nan, and not bracketed.
    """
    centre = u.mean()
    design = np.column_stack([np.ones_like(u), u - centre, (u - centre) ** 2])
    weights = counts.astype(float)
    gram = np.einsum("bn,ni,nj->bij", weights, design, design)
    moment = np.einsum("bn,ni,n->bi", weights, design, y)
    distinct, which = np.unique(u, return_inverse=True)
    solvable = ((counts @ (which[:, None] == np.arange(len(distinct)))) > 0).sum(axis=1) >= 3  # distinct u held
    gram[~solvable] = np.eye(3)  # solved, then discarded
    coefficients = np.linalg.solve(gram, moment[..., None])[..., 0]
    coefficients[~solvable] = np.nan
    b0, b1, b2 = np.moveaxis(coefficients, -1, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        vertex = -b1 / (2 * b2)
        at_vertex = b0 - b1**2 / (4 * b2)
    support = np.where(counts > 0, (u - centre)[None, :], np.nan)
    bracketed = (b2 > 0) & (np.nanmin(support, axis=1) < vertex) & (vertex < np.nanmax(support, axis=1))
    return vertex + centre, at_vertex, b2, bracketed


def ols_line(x: np.ndarray, y: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """OLS of `y` on [1, x columns]: coefficients (k,) and their t-intervals (k, 2), nan if no dof."""
    import statsmodels.api as sm
    design = np.column_stack([np.ones(len(y)), x])
    model = sm.OLS(y, design).fit()
    if model.df_resid < 1:
        return model.params, np.full((len(model.params), 2), np.nan)
    return model.params, model.conf_int(alpha=1 - level)


def masked_least_squares(x: np.ndarray, targets: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per resample, least squares of `targets` (B, G) on [1, x] (G, k-1) over the rows in `mask`.

    Returns coefficients (B, k); nan for resamples whose masked rows cannot determine them.
    """
    design = np.column_stack([np.ones(len(x)), x])
    weights = mask.astype(float)
    safe_targets = np.where(mask, targets, 0.0)
    gram = np.einsum("bg,gi,gj->bij", weights, design, design)
    moment = np.einsum("bg,gi,bg->bi", weights, design, safe_targets)
    k = design.shape[1]
    solvable = np.linalg.matrix_rank(gram) == k
    coefs = np.full((len(targets), k), np.nan)
    if solvable.any():
        coefs[solvable] = np.linalg.solve(gram[solvable], moment[solvable][..., None])[..., 0]
    return coefs


def require_rank(x: np.ndarray, names: tuple[str, ...], what: str) -> None:
    """UserError unless [1, x] has full column rank, naming the variables that cannot be separated."""
    design = np.column_stack([np.ones(len(x)), x])
    if len(design) < design.shape[1] or np.linalg.matrix_rank(design) < design.shape[1]:
        raise UserError(f"{what}: the usable groups do not separate the effects of {', '.join(names)} "
                        f"({len(design)} group(s)); vary them independently or add groups")
