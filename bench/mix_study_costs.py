"""Where a finished mixture study's time and compute went: wall time per proxy and per round, and the share
of the mixture stages' training FLOPs spent on proxies, verification and the scaling grids.

    .venv/bin/python bench/mix_study_costs.py results/mixture

Reads the study's mix/<stage>/runs.json (each run's C, in the study's FLOPs convention) and the Snakemake
benchmark of every mixture job (benchmarks/mix/<stage>-<run_id>.tsv, the job's wall seconds). A round's wall
time is the sum of its jobs' (the round's checkpoint, its proxies, its fit): on one core, how long the round
takes; with more, proxies run side by side.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from pathlib import Path


def job_seconds(path: Path) -> float:
    with open(path) as handle:
        return float(next(csv.DictReader(handle, delimiter="\t"))["s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path, help="the study's results folder, e.g. results/mixture")
    args = parser.parse_args()
    benchmarks = args.study / "benchmarks" / "mix"
    flops: dict[str, float] = {}
    for runs_path in sorted((args.study / "mix").glob("*/runs.json")):
        stage = runs_path.parent.name
        runs = json.loads(runs_path.read_text())
        seconds = [job_seconds(benchmarks / f"{stage}-{run_id}.tsv") for run_id in runs
                   if (benchmarks / f"{stage}-{run_id}.tsv").exists()]
        for record in runs.values():
            role = record["role"]
            flops[role] = flops.get(role, 0.0) + record["C"]
        extra = [job_seconds(path) for path in (benchmarks / f"{stage}.tsv", benchmarks / f"fit-{stage[6:]}.tsv")
                 if stage.startswith("round-") and path.exists()]
        if seconds:
            print(f"{stage}: {len(seconds)} runs, {statistics.median(seconds):.1f} s median per run "
                  f"(min {min(seconds):.1f}, max {max(seconds):.1f}), {sum(seconds) + sum(extra):.0f} s of jobs in all")
    total = sum(flops.values())
    for role, value in sorted(flops.items()):
        print(f"{role}: {value:.3g} FLOPs, {value / total:.1%} of the mixture stages' training compute")


if __name__ == "__main__":
    main()
