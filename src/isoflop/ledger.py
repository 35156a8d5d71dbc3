"""A forecast ledger: every forecast isoflop makes, kept until the run it is about lands, then scored.

One JSON object per line in `forecasts.jsonl` (append-only, so concurrent writers and a crash lose at
most a line). A forecast is about a run spec, keyed by the spec's content hash (`plan.content_id`: the
run_id of the run that will test it), and holds what was predicted, its 90% and 95% intervals (or, for
a "B beats A" call, its probability) and when it was made. `score` matches forecasts to landed runs by
that hash: inside each interval or not, the CRPS of the forecast read as a log-normal whose 90%
interval is the stated one, and the Brier score of each "beats" call.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from statistics import NormalDist

from isoflop.errors import UserError
from isoflop.workflow import read_json, write_json

LEDGER = "forecasts.jsonl"
LEVELS = (0.90, 0.95)
Z90 = NormalDist().inv_cdf(0.95)


def record_loss(folder: Path, spec_hash: str, predicted: float, intervals: dict[float, tuple[float, float]], *,
                what: str = "loss", source: str = "", made_at: float | None = None) -> dict:
    """Append a forecast of a run's loss: `predicted` with its intervals ({0.9: (low, high), 0.95: ...})."""
    entry = loss_entry(spec_hash, predicted, intervals, what=what, source=source)
    return _append(folder, {**entry, "made_at": time.time() if made_at is None else made_at})


def loss_entry(spec_hash: str, predicted: float, intervals: dict[float, tuple[float, float]], *,
               what: str = "loss", source: str = "", **details) -> dict:
    """A forecast of a run's loss as the ledger holds it, without the time it was made (see `record_loss`);
    `details` (the law, the run's N, D, C) are kept beside it."""
    missing = [level for level in LEVELS if level not in intervals]
    if missing:
        raise ValueError(f"a forecast needs its {', '.join(f'{m:.0%}' for m in missing)} interval(s)")
    return {"kind": "value", "spec_hash": spec_hash, "what": what, "predicted": float(predicted),
            "intervals": {f"{level:g}": [float(v) for v in intervals[level]] for level in LEVELS},
            "source": source, **details}


def record_beats(folder: Path, spec_hash: str, other_hash: str, probability: float, *, source: str = "",
                 made_at: float | None = None, **details) -> dict:
    """Append a call that the run `spec_hash` will reach a lower loss than the run `other_hash`, with its
    probability; `details` (such as the compute multiplier behind the call) are kept beside it."""
    if not 0 <= probability <= 1:
        raise ValueError(f"a probability must be in [0, 1], got {probability}")
    entry = {"kind": "beats", "spec_hash": spec_hash, "other_hash": other_hash, "probability": float(probability),
             "made_at": time.time() if made_at is None else made_at, "source": source, **details}
    return _append(folder, entry)


def _append(folder: Path, entry: dict) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LEDGER, "a") as handle:
        handle.write(json.dumps(entry, sort_keys=True) + "\n")
    return entry


def record_new(folder: Path, entries: list[dict], made_at: float | None = None) -> list[dict]:
    """Append the forecasts of `entries` (without their time) that the ledger does not already hold, stamped
    `made_at` (now by default), and return them: a rerun that forecasts the same again adds nothing."""
    held = {_identity(entry) for entry in read(folder)}
    stamp = time.time() if made_at is None else made_at
    new = [{**entry, "made_at": stamp} for entry in entries if _identity(entry) not in held]
    for entry in new:
        _append(folder, entry)
    return new


def _identity(entry: dict) -> str:
    """A forecast's content, its time left out: what makes two ledger lines the same forecast."""
    return json.dumps({key: value for key, value in entry.items() if key != "made_at"}, sort_keys=True)


def read(folder: Path) -> list[dict]:
    """The forecasts in `folder`'s ledger, oldest first ([] where there is none)."""
    path = folder / LEDGER
    if not path.exists():
        return []
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            raise UserError(f"{path}: line {number} is not JSON; remove or fix it") from None
    return entries


def landed_runs(results: Path, loss_key: str = "val_loss") -> dict[str, float]:
    """run_id -> final loss of every finished run under a results folder (any study's runs/<run_id>/result.json
    with status ok and a finite loss): the runs forecasts are scored against."""
    return landed_from(sorted(results.glob("**/runs/*/result.json")), loss_key)


def landed_from(result_paths, loss_key: str = "val_loss") -> dict[str, float]:
    """run_id (the folder's name) -> final loss of each of these runs/<run_id>/result.json files that finished
    (status ok, a finite loss)."""
    landed = {}
    for path in map(Path, result_paths):
        try:
            result = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        loss = result.get(loss_key)
        if result.get("status", "ok") == "ok" and isinstance(loss, (int, float)) and math.isfinite(loss):
            landed[path.parent.name] = float(loss)
    return landed


def score_stage(laws_path, result_paths, out_path) -> dict:
    """Rule score_forecasts: the forecasts laws.json holds (`forecasts`, made by the fit from the fitted runs
    alone) scored against the forecast runs' result.json files; writes {"forecasts": scored, "summary": ...}."""
    scored = score(read_json(laws_path).get("forecasts", []), landed_from(result_paths))
    out = {"forecasts": scored, "summary": summary(scored)}
    write_json(out_path, out)
    return out


def score(entries: list[dict], landed: dict[str, float]) -> list[dict]:
    """Each forecast with its score where its run (and, for "beats", the other run) has landed."""
    scored = []
    for entry in entries:
        entry = dict(entry)
        if entry["kind"] == "value" and entry["spec_hash"] in landed:
            observed = landed[entry["spec_hash"]]
            entry["observed"] = observed
            for level, (low, high) in entry["intervals"].items():
                entry[f"inside{round(100 * float(level))}"] = bool(low <= observed <= high)
            entry["crps"] = crps_lognormal(entry["predicted"], entry["intervals"]["0.9"], observed)
        elif entry["kind"] == "beats" and entry["spec_hash"] in landed and entry["other_hash"] in landed:
            outcome = landed[entry["spec_hash"]] < landed[entry["other_hash"]]
            entry["outcome"] = outcome
            entry["brier"] = (entry["probability"] - float(outcome)) ** 2
        scored.append(entry)
    return scored


def crps_lognormal(predicted: float, interval90, observed: float) -> float:
    """CRPS (in log-loss units) of the forecast read as log L ~ Normal(log predicted, s), s from the width of
    its 90% interval; the closed form for a normal (Gneiting & Raftery 2007, eq. 21)."""
    low, high = interval90
    sd = max((math.log(high) - math.log(low)) / (2 * Z90), 1e-12)
    z = (math.log(observed) - math.log(predicted)) / sd
    normal = NormalDist()
    return sd * (z * (2 * normal.cdf(z) - 1) + 2 * normal.pdf(z) - 1 / math.sqrt(math.pi))


def summary(scored: list[dict]) -> dict:
    """Counts and scores so far: made, scored, coverage of each level, mean CRPS, mean Brier."""
    values = [e for e in scored if "observed" in e]
    calls = [e for e in scored if "brier" in e]
    result = {"made": len(scored), "scored": len(values) + len(calls)}
    for level in LEVELS:
        key = f"inside{round(100 * level)}"
        result[f"coverage{round(100 * level)}"] = (sum(e[key] for e in values) / len(values)) if values else None
    result["mean_crps"] = sum(e["crps"] for e in values) / len(values) if values else None
    result["mean_brier"] = sum(e["brier"] for e in calls) / len(calls) if calls else None
    return result


def mlflow_metrics(scored: list[dict]) -> dict[str, float]:
    """The ledger's scores as MLflow metrics (forecasts_made, forecasts_scored, forecast_coverage90, ...), for
    the fit run; None-valued scores are left out."""
    return {f"forecast_{key}": float(value) for key, value in summary(scored).items() if value is not None}


def markdown_section(scored: list[dict], figure: str | None = None) -> str | None:
    """The report's ledger section from `score`'s list: each forecast and how it fared, forecasts made, scored,
    coverage so far and (where `figure` names a reliability diagram already drawn, see
    `isoflop.plots.forecasts`) the diagram; None where there is no forecast."""
    if not scored:
        return None
    stats = summary(scored)
    lines = ["## Forecast ledger", "",
             f"{stats['made']} forecast(s) made, {stats['scored']} scored against runs that have landed.", ""]
    values = [entry for entry in scored if entry["kind"] == "value"]
    if values:
        lines += ["| run | forecast | 90% interval | 95% interval | observed | inside 90% | inside 95% |",
                  "|---|---|---|---|---|---|---|"]
        for entry in values:
            (low90, high90), (low95, high95) = entry["intervals"]["0.9"], entry["intervals"]["0.95"]
            observed = ((f"{entry['observed']:.4f}", _yes(entry["inside90"]), _yes(entry["inside95"]))
                        if "observed" in entry else ("pending", "", ""))
            lines.append(f"| `{entry['spec_hash']}` | {entry['what']} {entry['predicted']:.4f} | "
                         f"[{low90:.4f}, {high90:.4f}] | [{low95:.4f}, {high95:.4f}] | " + " | ".join(observed) + " |")
        lines.append("")
    if stats["coverage90"] is not None:
        lines.append(f"Coverage so far: {stats['coverage90']:.0%} inside the 90% intervals, "
                     f"{stats['coverage95']:.0%} inside the 95% (mean CRPS {stats['mean_crps']:.4f}).")
    if stats["mean_brier"] is not None:
        lines.append(f"Mean Brier score of the \"beats\" calls: {stats['mean_brier']:.3f}.")
    if figure:
        lines += ["", f"![reliability diagram]({figure})"]
    return "\n".join(lines) + "\n"


def _yes(inside: bool) -> str:
    return "yes" if inside else "**no**"


def register(subparsers) -> None:
    """Add `isoflop forecasts` to the CLI."""
    parser = subparsers.add_parser(
        "forecasts", help="list a results folder's forecasts and score those whose runs have landed",
        description="List every forecast in FOLDER/forecasts.jsonl, scored against the finished runs under "
                    "FOLDER (or --results): inside its 90%/95% intervals, CRPS, Brier score of 'beats' calls.")
    parser.add_argument("folder", type=Path, metavar="FOLDER")
    parser.add_argument("--results", type=Path, help="where landed runs are found (default: FOLDER)")
    parser.set_defaults(func=run_forecasts)


def run_forecasts(args: argparse.Namespace) -> int:
    if not args.folder.is_dir():
        raise UserError(f"{args.folder}: no such folder")
    scored = score(read(args.folder), landed_runs(args.results or args.folder))
    for entry in scored:
        made = time.strftime("%Y-%m-%d %H:%M", time.gmtime(entry["made_at"]))
        if entry["kind"] == "value":
            low, high = entry["intervals"]["0.9"]
            verdict = (f"observed {entry['observed']:.4g}, {'inside' if entry['inside90'] else 'outside'} 90%"
                       if "observed" in entry else "pending")
            print(f"{made}  {entry['spec_hash']}  {entry['what']} {entry['predicted']:.4g} "
                  f"90% [{low:.4g}, {high:.4g}]  {verdict}")
        else:
            verdict = f"{'right' if entry['outcome'] else 'wrong'}, Brier {entry['brier']:.3f}" if "brier" in entry \
                else "pending"
            print(f"{made}  {entry['spec_hash']} beats {entry['other_hash']}  p={entry['probability']:.2f}  {verdict}")
    stats = summary(scored)
    print(f"{stats['made']} forecast(s), {stats['scored']} scored"
          + (f"; coverage 90% {stats['coverage90']:.0%}, 95% {stats['coverage95']:.0%}"
             if stats["coverage90"] is not None else ""))
    return 0
