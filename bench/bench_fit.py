"""Speed of the Chinchilla fit on the replication's 240 points, against two baselines run here too.

    .venv/bin/python bench/bench_fit.py [--bootstrap 1000] [--n-jobs 2] [--skip-recipe] [--skip-package]
    .venv/bin/python bench/bench_fit.py --rows 1e4 1e5 1e6     # scaling in rows: time and peak memory

Baselines, timed in the same process on the same data:
- recipe: the replication's plain loop, scipy L-BFGS-B (finite-difference gradients, default
  tolerances) from each of the 4,500 grid points, best kept (Besiroglu et al. 2024);
  its bootstrap: the same L-BFGS-B warm-started at the optimum per resample (timed on 50, scaled);
- package: `chinchilla` from PyPI (0.2.0: BFGS from each grid point, numerical gradients, 128-bit
  floats, a process pool), given the same Huber loss on log residuals; skipped if not importable.
Ratios are baseline time / isoflop time (above 1: isoflop is faster). The objective each reached is
printed as the summed Huber loss, so accuracy can be compared too.

With --rows, `isoflop fit --law chinchilla` (default 1,000-resample bootstrap) runs as a child process on
synthetic CSVs of that many distinct rows; each prints its wall time, CPU time and peak resident memory, and
the ratios against the smallest table (the baseline) show how time and memory grow with rows.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import huber, logsumexp

from isoflop.fit import fit_chinchilla
from isoflop.fit.bootstrap import available_cores, resample_counts
from isoflop.fit.laws import CHINCHILLA
from isoflop.fit.power import bootstrap_refits
from isoflop.fit.solve import global_minimize, replication_grid

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "reference" / "chinchilla" / "svg_extracted_data.csv"
DELTA = 1e-3


def load() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    table = pd.read_csv(DATA)
    table = table.drop(table["loss"].nlargest(5).index)
    n, c = table["Model Size"].to_numpy(), table["Training FLOP"].to_numpy()
    return n, c / (6 * n), table["loss"].to_numpy()


def timed(func, repeats: int = 1):
    """(result of the last call, best wall time over `repeats` calls)."""
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - start)
    return result, best


def recipe_objective(theta, log_n, log_d, log_loss):
    """The replication's objective as written there: scipy's logsumexp and huber, summed."""
    a, b, e, alpha, beta = theta
    predicted = logsumexp([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)], axis=0)
    return np.sum(huber(DELTA, predicted - log_loss))


def recipe_fit(log_n, log_d, log_loss):
    best = None
    for start in replication_grid(CHINCHILLA):
        result = minimize(recipe_objective, start, args=(log_n, log_d, log_loss), method="L-BFGS-B")
        if best is None or result.fun < best.fun:
            best = result
    return best


def recipe_bootstrap(theta, log_n, log_d, log_loss, counts):
    for weights in counts:
        rows = np.repeat(np.arange(len(weights)), weights)
        minimize(recipe_objective, theta, args=(log_n[rows], log_d[rows], log_loss[rows]), method="L-BFGS-B")


def package_fit(n, d, loss):
    """`chinchilla` (PyPI) on the same points and grid, with the same Huber loss on log residuals."""
    import logging

    from chinchilla import Chinchilla

    def log_huber(y_true, y_pred):
        return huber(DELTA, np.log(np.asarray(y_pred, dtype=float)) - np.log(np.asarray(y_true, dtype=float)))

    grid = {"e": np.arange(-1, 1.5, 0.5), "a": np.arange(0, 30, 5.0), "b": np.arange(0, 30, 5.0),
            "alpha": np.arange(0, 2.5, 0.5), "beta": np.arange(0, 2.5, 0.5)}
    with tempfile.TemporaryDirectory() as folder:
        model = Chinchilla(project_dir=folder, param_grid={k: tuple(v) for k, v in grid.items()},
                           loss_fn=log_huber, log_level=logging.ERROR)
        model.database.df = pd.DataFrame({"C": 6 * n * d, "N": n, "D": d, "loss": loss})
        model.fit(parallel=True)
        return np.array([model.E, model.A, model.B, model.alpha, model.beta], dtype=float)


def summed_objective(params, log_x, log_y) -> float:
    theta = CHINCHILLA.to_theta(np.asarray(params, dtype=float))[None]
    return float(CHINCHILLA.huber_objective(theta, log_x, log_y, 1.0, DELTA)[0][0])


ROWS_CHILD = """
import resource, sys, time
start = time.perf_counter()
from isoflop.cli import main
code = main(["fit", sys.argv[1], "--law", "chinchilla", "--out", sys.argv[2]])
usage = resource.getrusage(resource.RUSAGE_SELF)
print(time.perf_counter() - start, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)
"""


def rows_scaling(row_counts: list[float]) -> int:
    """Time and peak memory of `isoflop fit` on synthetic CSVs of each size, against the smallest."""
    import subprocess

    rng = np.random.default_rng(0)
    baseline = None
    with tempfile.TemporaryDirectory() as folder:
        for rows in sorted(int(r) for r in row_counts):
            n = np.exp(rng.uniform(np.log(1e7), np.log(1e10), rows))
            d = np.exp(rng.uniform(np.log(1e9), np.log(1e12), rows))
            loss = (1.8 + 480 / n**0.35 + 2100 / d**0.37) * np.exp(rng.normal(0, 0.01, rows))
            csv = Path(folder) / f"runs-{rows}.csv"
            pd.DataFrame({"N": n, "D": d, "loss": loss}).to_csv(csv, index=False)
            done = subprocess.run([sys.executable, "-c", ROWS_CHILD, str(csv), str(Path(folder) / "law.json")],
                                  capture_output=True, text=True, check=True)
            wall, cpu, peak_mib = map(float, done.stdout.strip().splitlines()[-1].split())
            baseline = baseline or (rows, wall, peak_mib)
            print(f"{rows:>9,} rows: wall {wall:7.2f} s  cpu {cpu:7.2f} s  peak RSS {peak_mib:7.0f} MiB  "
                  f"ratios vs {baseline[0]:,} rows: rows {rows / baseline[0]:.0f}x, time {wall / baseline[1]:.2f}x, "
                  f"memory {peak_mib / baseline[2]:.2f}x")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-recipe", action="store_true")
    parser.add_argument("--skip-package", action="store_true")
    parser.add_argument("--rows", type=float, nargs="+", help="instead: time and memory of fits of this many rows")
    args = parser.parse_args()
    if args.rows:
        return rows_scaling(args.rows)
    n, d, loss = load()
    log_x, log_y = np.log(np.column_stack([n, d])), np.log(loss)
    print(f"{len(loss)} points; cores available {available_cores()} (os.cpu_count {os.cpu_count()}); "
          f"n_jobs {args.n_jobs}; python {sys.version.split()[0]}")

    fit, fit_time = timed(lambda: fit_chinchilla(n, d, loss), args.repeats)
    ours = np.array([fit["params"][k] for k in ("E", "A", "B", "alpha", "beta")])
    print(f"isoflop fit:        {fit_time:8.3f} s  objective {fit['objective']:.10f}  params {np.round(ours, 4)}")
    _, _, minima = global_minimize(CHINCHILLA, log_x, log_y, DELTA)
    counts = resample_counts(len(loss), args.bootstrap, seed=0)
    _, boot_time = timed(lambda: bootstrap_refits(CHINCHILLA, log_x, log_y, DELTA, minima, counts, args.n_jobs),
                         args.repeats)
    print(f"isoflop bootstrap:  {boot_time:8.3f} s  for {args.bootstrap} refits ({len(minima)} start(s) each)")
    _, single_time = timed(lambda: bootstrap_refits(CHINCHILLA, log_x, log_y, DELTA, minima, counts, 1), 1)
    print(f"  same on 1 thread: {single_time:8.3f} s  (thread speed-up {single_time / boot_time:.2f}x)")
    _, end_to_end = timed(lambda: fit_chinchilla(n, d, loss, bootstrap=args.bootstrap, n_jobs=args.n_jobs), 1)
    print(f"isoflop fit + bootstrap end to end: {end_to_end:.3f} s")

    if not args.skip_recipe:
        log_n, log_d = log_x[:, 0], log_x[:, 1]
        best, recipe_time = timed(lambda: recipe_fit(log_n, log_d, log_y))
        recipe_params = CHINCHILLA.to_params(best.x)
        print(f"recipe fit:         {recipe_time:8.3f} s  objective {best.fun:.10f}  params {np.round(recipe_params, 4)}")
        print(f"  ratio recipe / isoflop (fit): {recipe_time / fit_time:.1f}x")
        sample = counts[:50]
        _, sample_time = timed(lambda: recipe_bootstrap(best.x, log_n, log_d, log_y, sample))
        scaled = sample_time * args.bootstrap / len(sample)
        print(f"recipe bootstrap:   {scaled:8.3f} s  for {args.bootstrap} warm-started refits "
              f"(50 timed, scaled)")
        print(f"  ratio recipe / isoflop (bootstrap): {scaled / boot_time:.1f}x")

    if not args.skip_package:
        try:
            import chinchilla  # noqa: F401
        except ImportError:
            print("package: `chinchilla` is not importable here; skipped (pip install chinchilla==0.2.0)")
            return 0
        params, package_time = timed(lambda: package_fit(n, d, loss))
        print(f"package fit:        {package_time:8.3f} s  objective {summed_objective(params, log_x, log_y):.10f}  "
              f"params {np.round(params, 4)}")
        print(f"  ratio package / isoflop (fit): {package_time / fit_time:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
