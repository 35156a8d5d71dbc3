"""Figures of fitted scaling laws: each a pure function of tables and fit dicts to a PNG file."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from isoflop.fit.frontier import (
    allocation_curves,
    allocation_exponents,
    budget_profile,
    compute_grid,
    loss_curve,
    tokens_per_param_curve,
)
from isoflop.fit.predict import predict
from isoflop.plots import axis_labels, interval_text, save_figure

BAND_ALPHA = 0.2
# The three approaches of Hoffmann et al. 2022 in laws.json's keys, in Okabe-Ito colours (safe for the common
# colour-vision deficiencies), each approach one colour in every figure.
APPROACHES = (("envelope", "#009E73", "approach 1 (envelope)"), ("isoflop", "#E69F00", "approach 2 (IsoFLOP)"),
              ("chinchilla", "#0072B2", "approach 3 (Chinchilla fit)"))
CHINCHILLA_TOKENS_PER_PARAM = 20  # Hoffmann et al.'s rule of thumb, drawn for scale


def plot_isoflop_curves(runs: pd.DataFrame, isoflop_fit: dict, path, *, loss_col: str | None = None,
                        convention: str | None = None, seed_noise: dict | None = None) -> None:
    """Loss against N per budget, with each budget's parabola and vertex; edge minima hollow. With `seed_noise`
    (laws.json's), each parabola carries a band of +-1.96 run-to-run standard deviations: where 95% of single
    runs would land if the parabola were the truth.

    `runs` needs N, C and the loss (`loss_col`, else "loss", else "val_loss"); a run belongs to the
    budget the fit grouped it under (its `budget` column), or without one to the fitted budget nearest its C.
    """
    loss_col = _loss_column(runs, loss_col)
    budgets = isoflop_fit["budgets"]
    if "budget" in runs and all(b.get("budget") is not None for b in budgets):
        groups = [runs["budget"].to_numpy() == b["budget"] for b in budgets]
    else:
        budget_c = np.array([b["C"] for b in budgets])
        nearest = np.abs(np.log(runs["C"].to_numpy())[:, None] - np.log(budget_c)[None]).argmin(axis=1)
        groups = [nearest == index for index in range(len(budgets))]
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(budgets)))
    fig, ax = plt.subplots(figsize=(7, 5))
    for group, budget, colour in zip(groups, budgets, colours):
        members = runs[group]
        ax.scatter(members["N"], members[loss_col], color=colour, s=18, label=f"C = {budget['C']:.2g}")
        grid = np.geomspace(members["N"].min(), members["N"].max(), 100)
        profile = budget_profile(budget, grid)
        ax.plot(grid, profile, color=colour, lw=1)
        if seed_noise:
            ax.fill_between(grid, profile - 1.96 * seed_noise["sd"], profile + 1.96 * seed_noise["sd"],
                            color=colour, alpha=BAND_ALPHA, lw=0)
        edge = budget["minimum_at_edge"]
        ax.scatter([budget["N_opt"]], [budget["loss_opt"]], marker="*", s=140, edgecolor=colour,
                   facecolor="none" if edge else colour, zorder=3)
    ax.scatter([], [], marker="*", s=140, facecolor="none", edgecolor="grey", label="minimum at edge (unused)")
    if seed_noise:
        ax.fill_between([], [], [], color="grey", alpha=BAND_ALPHA, lw=0,
                        label=f"seed noise: ±1.96 sd ({seed_noise['sd']:.3g} nats, {seed_noise['dof']} dof)")
    ax.set_xscale("log")
    exponent, ci = allocation_exponents(isoflop_fit)["N_opt"]
    ax.set(xlabel=axis_labels(convention)[0], ylabel="validation loss (nats/token)",
           title=f"IsoFLOP profiles: N* ∝ C^{interval_text(exponent, ci)}")
    ax.legend(fontsize=8)
    save_figure(fig, path)


def plot_frontier(isoflop_fit: dict | None, chinchilla_fit: dict | None, path, *, envelope_fit: dict | None = None,
                  next_budget: dict | None = None, convention: str | None = None) -> None:
    """Compute-optimal N*(C) and D*(C) from each approach fitted, with 95% bootstrap bands, the IsoFLOP
    budgets' own minima and, from `next_budget` (laws.json's), each approach's projection at 10x."""
    fits = _fits(envelope_fit, isoflop_fit, chinchilla_fit)
    compute = compute_grid([fit for _, fit, _, _ in fits])
    n_label, c_label = axis_labels(convention)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for key, ax, unit in (("N_opt", axes[0], f"N* {n_label.removeprefix('N ')}"), ("D_opt", axes[1], "tokens D*")):
        for _, fit, colour, label in fits:
            exponent, ci = allocation_exponents(fit)[key]
            _line_with_band(ax, compute, *allocation_curves(fit, compute)[key], colour,
                            f"{label}: ∝ C^{interval_text(exponent, ci)}")
        if isoflop_fit:
            used = [b for b in isoflop_fit["budgets"] if not b["minimum_at_edge"]]
            values = np.array([b[key] for b in used])
            colour = _colour("isoflop")
            if key == "N_opt":
                bounds = np.array([b["ci95"]["N_opt"] for b in used], dtype=float)
                errors = np.abs(np.nan_to_num(bounds.T - values, nan=0.0))
                ax.errorbar([b["C"] for b in used], values, yerr=errors, fmt="o", color=colour, ms=4)
            else:
                ax.plot([b["C"] for b in used], values, "o", color=colour, ms=4)
        title = f"compute-optimal {unit.split()[0]}"
        if next_budget:
            title = _draw_projection(ax, next_budget, key, [name for name, *_ in fits])
        ax.set(xscale="log", yscale="log", xlabel=c_label, ylabel=unit, title=title)
        ax.legend(fontsize=7)
    save_figure(fig, path)


def plot_tokens_per_param(isoflop_fit: dict | None, chinchilla_fit: dict | None, path, *,
                          envelope_fit: dict | None = None, next_budget: dict | None = None,
                          convention: str | None = None) -> None:
    """D*/N* against C from each approach with its 95% band; the ratio each implies at the next budget."""
    fits = _fits(envelope_fit, isoflop_fit, chinchilla_fit)
    compute = compute_grid([fit for _, fit, _, _ in fits])
    at = next_budget["C"] if next_budget else compute[-1]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ratios = []
    for _, fit, colour, label in fits:
        point, band = tokens_per_param_curve(fit, compute)
        ratio, ratio_band = tokens_per_param_curve(fit, np.array([at]))
        ratios.append(ratio[0])
        where = f"{ratio[0]:.0f}" + ("" if ratio_band is None else f" [{ratio_band[0, 0]:.0f}, {ratio_band[1, 0]:.0f}]")
        _line_with_band(ax, compute, point, band, colour, f"{label}: {where} at C = {at:.2g}")
    if isoflop_fit:
        used = [b for b in isoflop_fit["budgets"] if not b["minimum_at_edge"]]
        ax.plot([b["C"] for b in used], [b["D_opt"] / b["N_opt"] for b in used], "o", color=_colour("isoflop"),
                ms=4, label="IsoFLOP minimum of each budget")
    ax.axhline(CHINCHILLA_TOKENS_PER_PARAM, color="grey", ls=":", lw=1,
               label=f"{CHINCHILLA_TOKENS_PER_PARAM} tokens per parameter (Hoffmann et al.)")
    spread = f"{min(ratios):.0f} to {max(ratios):.0f}" if len(ratios) > 1 else f"{ratios[0]:.0f}"
    ax.set(xscale="log", yscale="log", xlabel=axis_labels(convention)[1], ylabel="tokens per parameter D*/N*",
           title=f"Compute-optimal tokens per parameter: {spread} at C = {at:.2g}")
    ax.legend(fontsize=7)
    save_figure(fig, path)


def plot_envelope(envelope_fit: dict, path, *, convention: str | None = None) -> None:
    """Approach 1: the losses the envelope was taken over (`envelope_fit["runs"]`), joined per model size, with
    the lowest loss reached at each compute (left); the size reaching it and the power law fitted to those
    sizes (right)."""
    n_label, c_label = axis_labels(convention)
    points = pd.DataFrame(envelope_fit["runs"])
    frontier = {key: np.asarray(values, dtype=float) for key, values in envelope_fit["frontier"].items()
                if key != "run"}
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    sizes = np.sort(points["N"].unique())
    for size, colour in zip(sizes, plt.cm.viridis(np.linspace(0, 0.9, len(sizes)))):
        members = points[points["N"] == size].sort_values("C")
        left.plot(members["C"], members["loss"], "o-", color=colour, ms=4, lw=1, label=f"N = {size:,.0f}")
    left.plot(frontier["C"], frontier["loss"], color="black", lw=3, alpha=0.5, label="envelope (lowest loss)")
    left.set(xscale="log", xlabel=c_label, ylabel="validation loss (nats/token)",
             title="Approach 1: the lowest loss reached at each compute")
    left.legend(fontsize=7, ncols=2)
    covered = np.isfinite(frontier["N"])
    right.plot(frontier["C"][covered], frontier["N"][covered], ".", color="black", ms=4,
               label="size on the envelope")
    line, band = allocation_curves(envelope_fit, frontier["C"])["N_opt"]
    _line_with_band(right, frontier["C"], line, band, _colour("envelope"), "N* = k C^a")
    exponent, ci = allocation_exponents(envelope_fit)["N_opt"]
    right.set(xscale="log", yscale="log", xlabel=c_label, ylabel=f"N* {n_label.removeprefix('N ')}",
              title=f"Envelope: N* ∝ C^{interval_text(exponent, ci)} ({envelope_fit['n_runs']} sizes)")
    right.legend(fontsize=7)
    save_figure(fig, path)


def _fits(envelope_fit, isoflop_fit, chinchilla_fit) -> list[tuple[str, dict, str, str]]:
    """(key, fit, colour, label) of each approach fitted, in `APPROACHES` order."""
    fits = {"envelope": envelope_fit, "isoflop": isoflop_fit, "chinchilla": chinchilla_fit}
    return [(name, fits[name], colour, label) for name, colour, label in APPROACHES if fits[name]]


def _colour(name: str) -> str:
    return next(colour for key, colour, _ in APPROACHES if key == name)


def _draw_projection(ax, next_budget: dict, key: str, names: list[str]) -> str:
    """Each approach's `key` (N_opt or D_opt) at the next budget as a point with its 95% interval, set apart
    along C so the bars do not hide each other; returns a title stating the headline approach's value.
    `next_budget` holds the headline (its `source`) at its top level and the other approaches under their keys."""
    compute = next_budget["C"]
    entries = [(name, next_budget if name == next_budget["source"] else next_budget.get(name)) for name in names]
    drawn = [(name, entry) for name, entry in entries if entry]
    for offset, (name, entry) in zip(np.linspace(-0.04, 0.04, len(drawn)), drawn):
        value, ci = entry[key], entry["ci95"].get(key)
        yerr = None if not ci or None in ci else [[value - ci[0]], [ci[1] - value]]
        ax.errorbar([compute * 10**offset], [value], yerr=yerr, fmt="D", color=_colour(name), ms=6, capsize=3,
                    mec="black", mew=0.6, zorder=4)
    ax.axvline(compute, color="grey", ls=":", lw=1)
    ci = next_budget["ci95"].get(key)
    interval = "" if not ci or None in ci else f" [{ci[0]:.2g}, {ci[1]:.2g}]"
    symbol = "N*" if key == "N_opt" else "D*"
    source = next(label for name, _, label in APPROACHES if name == next_budget["source"]).split(" (")[0]
    return f"next 10x budget, C = {compute:.2g} (◆)\n{symbol} = {next_budget[key]:.2g}{interval} by {source} (trusted)"


def plot_fitted_vs_observed(runs: pd.DataFrame, chinchilla_fit: dict, path, *, loss_col: str | None = None,
                            convention: str | None = None) -> None:
    """Predicted against observed loss for every run, coloured by its compute C (the study's, where `runs`
    has it; else 6ND, the only compute N and D alone give), with the identity line."""
    loss_col = _loss_column(runs, loss_col)
    observed = runs[loss_col].to_numpy()
    predicted, (low, high) = predict(chinchilla_fit, runs["N"].to_numpy(), runs["D"].to_numpy())
    fig, ax = plt.subplots(figsize=(5.5, 5))
    if "C" in runs:
        colour, compute_label = np.log10(runs["C"].to_numpy(dtype=float)), axis_labels(convention)[1]
    else:
        colour, compute_label = np.log10(runs["N"].to_numpy() * runs["D"].to_numpy() * 6.0), "6ND (FLOPs)"
    if np.isfinite(low).all():
        ax.errorbar(observed, predicted, yerr=[predicted - low, high - predicted], fmt="none",
                    ecolor="lightgrey", zorder=1)
    points = ax.scatter(observed, predicted, c=colour, s=14, cmap="viridis", zorder=2)
    fig.colorbar(points, label=f"log10 of {compute_label}")
    span = [min(observed.min(), predicted.min()), max(observed.max(), predicted.max())]
    ax.plot(span, span, "k--", lw=1, label="predicted = observed")
    error = np.mean(np.abs(predicted / observed - 1))
    ax.set(xlabel="observed loss (nats/token)", ylabel="fitted loss (nats/token)",
           title=f"{chinchilla_fit['law']} fit: mean |relative error| {error:.2%}")
    ax.legend(fontsize=8)
    save_figure(fig, path)


def plot_extrapolation(runs: pd.DataFrame, laws: dict, path, *, loss_col: str | None = None,
                       convention: str | None = None) -> None:
    """The held-out budget's runs against both laws' predictions from the other budgets."""
    loss_col = _loss_column(runs, loss_col)
    check = laws.get("extrapolation")
    fig, ax = plt.subplots(figsize=(7, 5))
    if not check:
        ax.text(0.5, 0.5, "no extrapolation check (fewer than 2 budgets)", ha="center", transform=ax.transAxes)
        save_figure(fig, path)
        return
    held = pd.DataFrame(check["runs"])
    train = runs[~runs["run_id"].astype(str).isin(held["run_id"])] if "run_id" in runs else runs.iloc[:0]
    ax.scatter(train["N"], train[loss_col], color="lightgrey", s=12, label="training budgets")
    ax.scatter(held["N"], held["observed"], color="k", s=28, label=f"held out: C = {check['held_out_C']:.2g}")
    for offset, (name, colour) in enumerate((("chinchilla", "C0"), ("isoflop", "C1"))):
        summary = check["laws"].get(name)
        if not summary:
            continue
        predicted = held[name].apply(lambda row: row["predicted"]).to_numpy()
        low = held[name].apply(lambda row: row["pred_lo95"]).to_numpy(dtype=float)
        high = held[name].apply(lambda row: row["pred_hi95"]).to_numpy(dtype=float)
        shifted = held["N"].to_numpy() * (1.03 if offset else 0.97)  # keep the two sets of bars apart
        yerr = None if np.isnan(low).all() else [predicted - low, high - predicted]
        ax.errorbar(shifted, predicted, yerr=yerr, fmt="s", color=colour, ms=4, capsize=2,
                    label=f"{name} with 95% prediction interval (mean |rel. error| "
                          f"{summary['mean_abs_rel_error']:.2%}, {summary['coverage95']:.0%} inside)")
    errors = ", ".join(f"{name} {summary['mean_abs_rel_error']:.1%}" for name, summary in check["laws"].items()
                       if summary)
    ax.set(xscale="log", xlabel=axis_labels(convention)[0], ylabel="validation loss (nats/token)",
           title=f"Fitted {check['factor']:.2g}x below the largest budget, predicting it: |error| {errors or 'n/a'}")
    ax.legend(fontsize=8)
    save_figure(fig, path)


BACKTEST_COLOURS = {"isoflop": "#E69F00", "chinchilla": "#0072B2", "overtrained": "#CC79A7"}


def plot_backtest(laws: dict, path) -> None:
    """Each law's backtest: per fold (panel), the relative error of every held-out run's predicted loss against
    its budget, with its 95% prediction interval as a relative error bar; the title of each panel states the
    fold's coverage. A law is honest where its bars cross zero about 95% of the time."""
    backtests = {name: result for name, result in (laws.get("backtest") or {}).items() if result.get("n_predictions")}
    n_folds = max((len(result["folds"]) for result in backtests.values()), default=0)
    fig, axes = plt.subplots(1, max(n_folds, 1), figsize=(4.2 * max(n_folds, 1), 4.2), sharey=True, squeeze=False)
    for index, ax in enumerate(axes[0]):
        titles = []
        for offset, (name, result) in enumerate(backtests.items()):
            if index >= len(result["folds"]) or "predictions" not in result["folds"][index]:
                continue
            fold = result["folds"][index]
            rows = fold["predictions"]
            observed, predicted = np.array(rows["observed"]), np.array(rows["predicted"])
            low, high = np.array(rows["pred_lo95"], dtype=float), np.array(rows["pred_hi95"], dtype=float)
            shift = np.array(rows["budget"]) * 1.06 ** (offset - (len(backtests) - 1) / 2)
            error = 100 * (predicted / observed - 1)
            ax.errorbar(shift, error, yerr=[100 * (predicted - low) / observed, 100 * (high - predicted) / observed],
                        fmt="o", ms=3, capsize=2, color=BACKTEST_COLOURS.get(name, "grey"),
                        label=f"{name}: {fold['coverage95']:.0%} inside" if index == 0 else f"{fold['coverage95']:.0%}")
            titles.append(fold)
        ax.axhline(0, color="k", lw=0.8)
        if titles:
            ax.axvline(titles[0]["train_budgets"][-1], color="grey", ls=":", lw=1)
            ax.set_title(f"fitted on {len(titles[0]['train_budgets'])} budgets (to C = "
                         f"{titles[0]['train_budgets'][-1]:.2g})", fontsize=9)
        ax.set(xscale="log", xlabel="held-out budget C (FLOPs)")
        ax.legend(fontsize=7, title="95% pred. interval coverage", title_fontsize=7)
    axes[0][0].set_ylabel("predicted / observed loss - 1 (%)")
    ranking = laws.get("backtest_ranking") or []
    best = f"; lowest error: {ranking[0]['law']} {ranking[0]['mean_abs_rel_error']:.2%}" if ranking else ""
    fig.suptitle(f"Backtest: each law fitted on the smaller budgets predicts every larger one{best}", fontsize=10)
    save_figure(fig, path)


def plot_curve(x: np.ndarray, y: np.ndarray, curve_fit: dict, path) -> None:
    """A one-variable loss curve: the points, the fitted law and its 95% band."""
    variable = curve_fit["variable"]
    grid, point, (low, high) = loss_curve(curve_fit, x)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.scatter(x, y, color="k", s=14, label="runs")
    _line_with_band(ax, grid, point, (low, high), "C0", curve_fit["form"])
    labels = {"N": "parameters N", "D": "tokens D", "C": "training compute C (FLOPs)"}
    ax.set(xscale="log", yscale="log", xlabel=labels[variable], ylabel="loss (nats/token)",
           title=f"loss curve in {variable}")
    ax.legend(fontsize=8)
    save_figure(fig, path)


def _loss_column(runs: pd.DataFrame, loss_col: str | None) -> str:
    for candidate in (loss_col, "loss", "val_loss"):
        if candidate and candidate in runs:
            return candidate
    raise KeyError(f"runs have no loss column (tried {loss_col!r}, 'loss', 'val_loss')")


def _line_with_band(ax, x, point, band, colour, label) -> None:
    has_band = band is not None and np.isfinite(band).any()
    ax.plot(x, point, color=colour, label=label + (" with 95% band" if has_band else ""))
    if has_band:
        ax.fill_between(x, band[0], band[1], color=colour, alpha=BAND_ALPHA, lw=0)
