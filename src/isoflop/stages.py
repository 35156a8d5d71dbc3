"""Each workflow stage as a function of (config, input paths) -> output files.

Output folders are named by content hashes (see `isoflop.plan`), so these functions never decide whether to
run: Snakemake does, from the paths.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

from isoflop.errors import UserError
from isoflop.workflow import atomic_write, read_json, write_json

if TYPE_CHECKING:  # pandas is imported by the stages that read tables; a run's publishing job needs none
    import pandas as pd

log = logging.getLogger("isoflop")


def plan_stage(plan: dict, out_path) -> dict:
    """Write the study's plan (ids, runs, trunks, compute summary), computed once when the workflow is parsed,
    as the JSON that every job needing a run record reads."""
    write_json(out_path, plan)
    compute = plan["compute"]
    log.info("%d runs, %d trunks: %.3g FLOPs planned (%.3g as separate runs)", compute["runs"], compute["trunks"],
             compute["planned_flops"], compute["separate_flops"])
    return plan


def tokenize_stage(curated_dir, out_dir, tokenizer: dict) -> dict:
    """Train the BPE on the training split (or load `tokenizer.path`) and write the token folder (see
    `isoflop.tokens`)."""
    import pyarrow.parquet as pq

    from isoflop.tokens import tokenize_curated

    curated_dir = Path(curated_dir)
    # nothing to train on: stop here, before any training job, with a line saying why
    if not pq.ParquetFile(curated_dir / "train.parquet").metadata.num_rows:
        ingested = read_json(curated_dir / "curation.json")["ingest"]["documents"]
        raise UserError(f"curation left no training document of the {ingested} ingested (see "
                        f"{curated_dir / 'curation.json'}); loosen curate.quality or add documents to the corpus")
    meta = tokenize_curated(curated_dir, tokenizer, out_dir)  # streamed: memory follows a row group
    log.info("tokens: %s", json.dumps(meta["domains"]))
    return meta


def cluster_tokens_stage(curated_dir, tokens_dir, out_dir) -> dict:
    """The token folder of `mix.groups: clusters`: the curated splits encoded with the study's tokenizer, one
    group per curation cluster (c0, c1, ...), in the format of a token folder (see `isoflop.tokens`)."""
    import pandas as pd
    from tokenizers import Tokenizer

    from isoflop.mix.mixture import cluster_group
    from isoflop.tokens import write_groups

    curated_dir = Path(curated_dir)
    splits = [pd.read_parquet(curated_dir / f"{split}.parquet", columns=["id", "cluster", "text"])
              for split in ("train", "val")]
    for split in splits:
        split["group"] = split["cluster"].map(cluster_group)
    tokenizer = Tokenizer.from_file(str(Path(tokens_dir) / "tokenizer.json"))
    meta = write_groups(tokenizer, *splits, "group", out_dir)
    log.info("cluster tokens: %s", json.dumps(meta["domains"]))
    return meta


def resolve_spec(spec: dict, meta: dict) -> dict:
    """A planned spec with its data-dependent choices filled in: a named mixture's weights (natural, uniform),
    explicit weights checked against the token folder's groups."""
    from isoflop.mix.mixture import resolve

    spec = json.loads(json.dumps(spec))
    spec["mixture"] = resolve(spec["mixture"], meta, "mixture")
    return spec


def planned_run(plan_path, run_id: str, spec: dict) -> dict:
    """A run's record from plan.json, checked against the spec the job was started with (its params)."""
    run = read_json(plan_path)["runs"][run_id]
    if run["spec"] != spec:
        raise UserError(f"run {run_id}: plan.json {plan_path} disagrees with the job's spec; rerun the workflow")
    return run


def train_stage(run: dict, tokens_dir, result_path, *, device: str, trunk_runs=None, tracking=None,
                threads: int = 1, progress: bool = True, checkpoint_minutes: float = 0.0, parallel=None) -> dict:
    """Train one planned run into the folder of `result_path` (on `parallel`'s data-parallel ranks, an
    `isoflop.train.distributed.Parallel`; one device when None), then log it to the MLflow view `tracking` if
    given (never fatal). A wsd run branched from a trunk was trained by its trunk's job (`family_stage`):
    its folder is published from `trunk_runs` instead."""
    out_dir = Path(result_path).parent
    if run["trunk_id"]:
        result = publish_run(Path(trunk_runs) / run["run_id"], out_dir)
    else:
        from isoflop.tokens import read_meta
        from isoflop.train.distributed import SINGLE
        from isoflop.train.loop import train_run

        result = train_run(resolve_spec(run["spec"], read_meta(tokens_dir)), tokens_dir, out_dir, threads=threads,
                           device=device, progress=progress, checkpoint_minutes=checkpoint_minutes,
                           parallel=parallel or SINGLE)
    if tracking is not None:
        from isoflop.track import log_training_run_safely

        log_training_run_safely(tracking, run, out_dir)
    return result


def publish_run(source_dir: Path, out_dir: Path) -> dict:
    """Copy a finished run's files (curve.parquet, then result.json, which marks it finished) into its folder,
    once `isoflop.integrity.check_result` has found them as training wrote them."""
    from isoflop.integrity import RejectedRunFile, check_result

    try:
        check_result(source_dir / "result.json")
    except RejectedRunFile as err:
        raise UserError(f"{err}; delete {source_dir.parent.parent} and run the workflow again: it retrains that "
                        "trunk's family") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("curve.parquet", "result.json"):
        atomic_write(out_dir / name, lambda handle, name=name: handle.write((source_dir / name).read_bytes()))
    return read_json(out_dir / "result.json")


def family_stage(trunk_spec: dict, branches: dict[str, dict], tokens_dir, result_path, runs_dir, work_dir, *,
                 device: str, threads: int = 1, progress: bool = True, checkpoint_minutes: float = 0.0,
                 parallel=None) -> dict:
    """Train a shape's constant-lr trunk and every run branched from it (`branches`: run id -> {"spec",
    "branch_step"}) in one process (`isoflop.train.loop.train_family`, resumable in `work_dir`), then publish:
    each branch's folder into `runs_dir`, the trunk's result.json to `result_path`; `work_dir` goes last."""
    import shutil

    from isoflop.integrity import write_result
    from isoflop.tokens import read_meta
    from isoflop.train.distributed import SINGLE
    from isoflop.train.loop import train_family

    meta = read_meta(tokens_dir)
    work_dir, runs_dir = Path(work_dir), Path(runs_dir)
    members = {run_id: (resolve_spec(branch["spec"], meta), branch["branch_step"]) for run_id, branch in branches.items()}
    trunk_result, _ = train_family(resolve_spec(trunk_spec, meta), members, tokens_dir, work_dir, threads=threads,
                                   device=device, progress=progress, checkpoint_minutes=checkpoint_minutes,
                                   parallel=parallel or SINGLE)
    runs_dir.mkdir(parents=True, exist_ok=True)
    for run_id in branches:
        os.replace(work_dir / run_id, runs_dir / run_id)
    write_result(Path(result_path).parent, trunk_result)  # sealed again for its own folder, which holds no curve
    shutil.rmtree(work_dir)  # the trunk's saved states and checkpoints: dead weight once the family is done
    return trunk_result


def runs_table(runs: dict[str, dict], results: dict[str, dict], convention: str) -> pd.DataFrame:
    """One row per training run (the contract of `runs.parquet`; see README)."""
    import pandas as pd

    from isoflop.tasks.results import task_columns

    rows = []
    for run_id, run in runs.items():
        result = results[run_id]
        tokens = result.get("tokens", run["D"])
        per_token = run["C"] / run["D"]
        row = {
            "run_id": run_id,
            "budget": run["budget"],
            "d_model": run["d_model"],
            "n_layers": run["n_layers"],
            "n_heads": run["n_heads"],
            "N": run["N"],
            "N_total": run["params"]["total"],
            "N_nonembed": run["params"]["nonembed"],
            "N_nonembed_head": run["params"]["nonembed_head"],
            "D": tokens,
            "C": tokens * per_token,
            "flops_convention": convention,
            "seed": run["spec"]["train"]["seed"],
            "replicate": run["replicate"],
            "lr": run["spec"]["train"]["lr"],
            "lr_multiplier": run["lr_multiplier"],
            "batch_size": run["spec"]["train"]["batch_size"],
            "schedule": run["spec"]["train"]["schedule"],
            "trunk_id": run["trunk_id"],
            "branch_step": run["branch_step"],
            "status": result["status"],
            "steps": result.get("steps"),
            "val_loss": _finite_or_nan(result.get("val_loss")),
            "val_bpb": _finite_or_nan(result.get("val_bpb")),
            "train_loss": _finite_or_nan(result.get("train_loss")),
            "train_seconds": result.get("train_seconds"),
            "wall_seconds": result.get("wall_seconds"),
            "tokens_per_second": result.get("tokens_per_second"),
        }
        for domain, loss in sorted((result.get("val_loss_by_domain") or {}).items()):
            row[f"val_loss_{domain}"] = _finite_or_nan(loss)
        for domain, bpb in sorted((result.get("val_bpb_by_domain") or {}).items()):
            row[f"val_bpb_{domain}"] = _finite_or_nan(bpb)
        row.update(task_columns(result))
        rows.append(row)
    return pd.DataFrame(rows).sort_values(["budget", "N", "replicate", "lr"]).reset_index(drop=True)


def _finite_or_nan(value) -> float:
    return float(value) if value is not None and math.isfinite(float(value)) else float("nan")


def runs_table_stage(plan_path, result_paths, out_path) -> pd.DataFrame:
    """Gather every run's result.json into `runs.parquet`, warning about runs that did not finish ok. Each
    file is checked first (`isoflop.integrity.read_results`): a damaged one is moved aside and named, so
    the next workflow run retrains exactly its run."""
    from isoflop.integrity import read_results

    plan = read_json(plan_path)
    vocab_sizes = {run_id: run["spec"]["model"]["vocab_size"] for run_id, run in plan["runs"].items()}
    results = read_results(result_paths, vocab_sizes)
    table = runs_table({rid: plan["runs"][rid] for rid in results}, results, plan["flops_convention"])
    table.to_parquet(out_path, index=False)
    diverged = table[table["status"] != "ok"]
    for _, row in diverged.iterrows():
        log.warning("run %s (d_model=%d, budget %.3g) is %s", row.run_id, row.d_model, row.budget, row.status)
    return table


def schedule_law(runs: pd.DataFrame, plan_path, curve_paths, *, bootstrap: int, seed: int) -> dict:
    """The schedule law of every WSD family, from the curves of its branched runs (runs/<run_id>/curve.parquet)
    and their lr schedules as the plan specifies them."""
    import pandas as pd

    from isoflop.fit.schedule import fit_schedule_laws

    planned = read_json(plan_path)["runs"]
    branched = set(runs.loc[runs["trunk_id"].notna(), "run_id"]) if "trunk_id" in runs else set()
    curves = {Path(path).parent.name: pd.read_parquet(path) for path in curve_paths
              if Path(path).parent.name in branched}
    trains = {run_id: planned[run_id]["spec"]["train"] for run_id in curves}
    return fit_schedule_laws(runs[runs["run_id"].isin(curves)], curves, trains, bootstrap=bootstrap, seed=seed)


def best_of_sweep(runs: pd.DataFrame) -> pd.DataFrame:
    """Per grid point (budget, size, replicate), the finished run with the lowest validation loss: with a
    learning-rate sweep the laws describe tuned models. Without a sweep this is the table itself."""
    import pandas as pd

    from isoflop.fit.study import finished

    ok = finished(runs)
    best = ok.loc[ok.groupby(["budget", "N", "replicate"])["val_loss"].idxmin()]
    return pd.concat([best, runs.drop(ok.index)]).sort_values(["budget", "N", "replicate"])


def study_forecasts(laws: dict, plan: dict, seed: int) -> list[dict]:
    """The fit's forecast of each forecast run's loss (`plan.forecast_budgets`; the runs table leaves them out)
    from the law the study trusts, with its 90% and 95% prediction intervals (calibrated on the law's own
    out-of-sample errors where it has enough), keyed by the run's id: ledger entries without their time."""
    from isoflop import ledger
    from isoflop.fit.predict import predict_intervals, study_law

    runs = [run for _, run in sorted(plan["runs"].items()) if run.get("forecast")]
    if not runs:
        return []
    try:
        name, _ = study_law(laws)
    except UserError as err:  # no loss law was fitted: nothing to forecast with, which laws.json says
        laws["warnings"].append(f"forecasts: none made: {err}")
        return []
    inputs = {key: [float(run[key]) for run in runs] for key in ("N", "D", "C")}
    results = {level: predict_intervals(laws[name], inputs["N"], inputs["D"], C=inputs["C"], level=level,
                                        seed=seed) for level in ledger.LEVELS}
    return [ledger.loss_entry(run["run_id"], results[0.9]["predicted"][i],
                              {level: (r["pred_lo"][i], r["pred_hi"][i]) for level, r in results.items()},
                              source=f"fit ({name} law)", law=name, budget=run["budget"],
                              calibrated=bool(results[0.95]["calibrated"][i]),
                              **{key: values[i] for key, values in inputs.items()})
            for i, run in enumerate(runs)]


def fit_stage(runs_path, out_path, *, bootstrap: int, huber_delta: float, seed: int, lr_law: bool,
              n_jobs: int = 1, plan_path=None, curve_paths=(), ledger=None) -> dict:
    """Fit the study's laws (isoflop.fit.fit_study) and write `laws.json` with the settings it was fitted with
    and the table's N/C convention; with a learning-rate sweep (`lr_law`), on each grid point's best run, plus
    the learning-rate law from all runs; with the plan and the runs' curves, the schedule law of each WSD
    family (isoflop.fit.schedule) and the forecasts of the plan's forecast runs (`study_forecasts`), which
    are also recorded, stamped with the time, in the study's ledger file `ledger` (once: see
    `isoflop.ledger.record_new`)."""
    from isoflop.fit import fit_lr_law, fit_study
    from isoflop.fit.study import finished

    import pandas as pd

    runs = pd.read_parquet(runs_path)
    laws = fit_study(best_of_sweep(runs), bootstrap=bootstrap, seed=seed, huber_delta=huber_delta, n_jobs=n_jobs)
    laws["flops_convention"] = str(runs["flops_convention"].iloc[0]) if len(runs) else None
    laws["settings"] = {"bootstrap": bootstrap, "huber_delta": huber_delta, "seed": seed}
    if lr_law:
        ok = finished(runs)
        try:
            laws["lr_law"] = fit_lr_law(ok["N"], ok["D"], ok["lr"], ok["val_loss"], bootstrap=bootstrap, seed=seed)
            laws["warnings"].extend(f"lr law: {w}" for w in laws["lr_law"].get("warnings", []))
        except UserError as err:
            laws["lr_law"] = None
            laws["warnings"].append(f"lr law: not fitted: {err}")
    if plan_path is not None:
        laws["schedule_law"] = schedule_law(runs, plan_path, curve_paths, bootstrap=bootstrap, seed=seed)
        laws["warnings"].extend(f"schedule law, trunk {trunk_id}: {w}"
                                for trunk_id, family in laws["schedule_law"]["families"].items()
                                for w in family["warnings"])
        laws["forecasts"] = study_forecasts(laws, read_json(plan_path), seed)
    for warning in laws.get("warnings", []):
        log.warning("%s", warning)
    write_json(out_path, laws)
    if ledger is not None and laws.get("forecasts"):
        from isoflop.ledger import LEDGER, record_new

        if Path(ledger).name != LEDGER:
            raise ValueError(f"the ledger is {LEDGER} in a study's folder, not {ledger}")
        record_new(Path(ledger).parent, laws["forecasts"])
    return laws
