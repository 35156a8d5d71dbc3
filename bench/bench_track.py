"""Sync time of a synthetic study of N tiny runs, to the default SQLite store (the baseline) and to a
PostgreSQL-backed `mlflow server` (isoflop tracking-server), in one command: the first sync (logs every run)
and a second, no-op one (what the lookups cost: one tag-filtered, paged search of the study's runs, then a
check per run). MLflow's search_runs slows at tens of thousands of runs (MLflow issue 2730), so the no-op sync
is the number to watch as N grows.

    PYTHONPATH=src python bench/bench_track.py --runs 250 1000
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
from isoflop.track import Tracking, sync_study  # noqa: E402


def _sync_seconds(config: dict) -> float:
    layout = StudyLayout.of(config)
    started = time.perf_counter()
    sync_study(Tracking.of(config), layout, layout.plan, layout.tracked, config)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, nargs="+", default=[1000], help="study sizes (default: 1000)")
    parser.add_argument("--steps", type=int, default=20, help="train points per run's curve (default: 20)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-track-"))
    state = tracking_server.start(root / "server", workers=2)
    try:
        print(f"{'runs':>6} {'store':>10} {'first sync s':>13} {'runs/s':>7} {'no-op sync s':>13} {'ratio vs sqlite':>16}")
        for n_runs in args.runs:
            baseline = None
            for store, uri in (("sqlite", None), ("postgres", state["uri"])):
                config = synthetic_study(root / f"{store}-{n_runs}", f"bench-{n_runs}", n_runs, args.steps, uri)
                first, again = _sync_seconds(config), _sync_seconds(config)
                tracking = Tracking.of(config)
                assert kinds(tracking.uri, tracking.experiment)["train"] == n_runs
                baseline = baseline or (first, again)
                print(f"{n_runs:>6} {store:>10} {first:>13.1f} {n_runs / first:>7.1f} {again:>13.2f} "
                      f"{first / baseline[0]:>7.2f} / {again / baseline[1]:>5.2f}", flush=True)
    finally:
        tracking_server.stop(root / "server")
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
