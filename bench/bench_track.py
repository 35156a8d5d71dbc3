"""Sync time of a synthetic study of N tiny runs, to the default SQLite store (the baseline) and to a
PostgreSQL-backed `mlflow server` (isoflop tracking-server) logging one run at a time and `--threads` at once,
in one command: the first sync (logs every run) and a second, no-op one (what the lookups cost: one
tag-filtered, paged search of the study's runs, then a check per run). MLflow's search_runs slows at tens of
thousands of runs (MLflow issue 2730), so the no-op sync is the number to watch as N grows.

    PYTHONPATH=src python bench/bench_track.py --runs 1000 10000 --baseline-up-to 1000

Ratios are per run against the SQLite baseline of the same size, or of the largest size measured where a
size is above `--baseline-up-to` (SQLite logs about 3 runs/s: 10,000 runs take about an hour); the serial
server rows stop at the same size.
"""

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from tracking_checks import kinds, synthetic_study  # noqa: E402

from isoflop import tracking_server  # noqa: E402
from isoflop.layout import StudyLayout  # noqa: E402
from isoflop.track import SYNC_THREADS, Tracking, sync_study  # noqa: E402
from isoflop.workflow import read_json  # noqa: E402


def _sync_seconds(config: dict, threads: int) -> float:
    layout = StudyLayout.of(config)
    started = time.perf_counter()
    summary = sync_study(Tracking.of(config), layout, layout.plan, layout.tracked, config, threads=threads)
    seconds = time.perf_counter() - started
    # every run of the plan mapped to an MLflow run of its own, whatever order the threads logged them in
    assert sorted(summary["runs"]) == sorted(read_json(layout.plan)["runs"])
    assert len(set(summary["runs"].values())) == len(summary["runs"])
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, nargs="+", default=[1000], help="study sizes (default: 1000)")
    parser.add_argument("--steps", type=int, default=20, help="train points per run's curve (default: 20)")
    parser.add_argument("--threads", type=int, default=SYNC_THREADS,
                        help=f"runs logged to the server at once (default: the sync's {SYNC_THREADS})")
    parser.add_argument("--baseline-up-to", type=int, default=None,
                        help="largest size synced to SQLite and serially to the server (default: every size)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-track-"))
    state = tracking_server.start(root / "server", workers=2)
    try:
        print(f"{'runs':>6} {'store':>10} {'threads':>7} {'first sync s':>13} {'runs/s':>7} {'no-op sync s':>13} "
              f"{'per-run ratio vs sqlite (first / no-op)':>40}")
        baseline = None  # (runs, first seconds, no-op seconds) of the latest SQLite row
        for n_runs in sorted(args.runs):
            small = args.baseline_up_to is None or n_runs <= args.baseline_up_to
            stores = [("sqlite", None, 1)] * small + [("postgres", state["uri"], 1)] * small
            for store, uri, threads in [*stores, ("postgres", state["uri"], args.threads)]:
                name = f"bench-{n_runs}-{store}-{threads}"
                config = synthetic_study(root / name, name, n_runs, args.steps, uri)
                first = _sync_seconds(config, threads)
                # the first sync's numbers as soon as they are known: a large study's no-op sync takes minutes
                print(f"{n_runs:>6} {store:>10} {threads:>7} {first:>13.1f} {n_runs / first:>7.2f}", end="", flush=True)
                again = _sync_seconds(config, threads)
                tracking = Tracking.of(config)
                assert kinds(tracking.uri, tracking.experiment)["train"] == n_runs
                if store == "sqlite":
                    baseline = (n_runs, first, again)
                per_run = (first / n_runs) / (baseline[1] / baseline[0]), (again / n_runs) / (baseline[2] / baseline[0])
                print(f" {again:>13.2f} {per_run[0]:>12.2f} / {per_run[1]:>5.2f} (vs {baseline[0]} runs)", flush=True)
                shutil.rmtree(root / name, ignore_errors=True)
    finally:
        tracking_server.stop(root / "server")
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
