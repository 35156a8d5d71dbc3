"""Where every file of a study lives: the one place that names paths under `results/<study>/`.

The Snakemake rules (`workflow/rules/common.smk`) and the library (stages, tracking, report, `isoflop
track-sync`) both build paths here, so a folder is renamed in one line. Folders named by a content id
(corpus, curated, tokens, runs, trunks) hold results that are a pure function of that id; the study-level
files (plan, runs table, laws, report) are rewritten when what they declare changes.

    results/<study>/
      corpus/<corpus_id>/           shard-*.parquet, manifest.json
      curating/<curated_id>/        curation intermediates (per-shard work, dedup and cluster decisions)
      curated/<curated_id>/         train.parquet, val.parquet, curation.json
      tokens/<tokens_id>/           tokenizer.json, meta.json, <domain>/{train,val}.bin
      plan.json                     every run and trunk of the study, read by the jobs that need a record
      trunks/<trunk_id>/            result.json, runs/<run_id>/ (its branches, trained by its job), work/
      runs/<run_id>/                result.json, curve.parquet (ckpt.pt while training)
      mix/                          check.json; round-<r>/{runs.json, fit.json, runs/<run_id>/};
                                    final/{runs.json, runs/<run_id>/}; summary.json (see isoflop.mix)
      runs.parquet, laws.json, report.md, figures/
      logs/, benchmarks/            one log and one Snakemake benchmark per job, by stage
      mlflow.db, mlflow/            the default SQLite store, its artifacts and the workflow's markers

and, beside `results/` in the working directory, Snakemake's own state (not part of any study):

    .snakemake/locks/               Snakemake's lock of the working directory (left behind by a killed run)
    .snakemake/isoflop.lock         the OS lock every live run of the workflow holds (see isoflop.launch)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StudyLayout:
    """Paths of one study. Arguments that are ids may also be Snakemake wildcards ("{run_id}")."""

    root: Path

    @classmethod
    def of(cls, config: dict) -> StudyLayout:
        return cls(Path(config["results_dir"]) / config["study"])

    # data stages, each in a folder named by its content id
    def corpus(self, corpus_id: str) -> Path:
        return self.root / "corpus" / corpus_id

    def curating(self, curated_id: str) -> Path:
        return self.root / "curating" / curated_id

    def curated(self, curated_id: str) -> Path:
        return self.root / "curated" / curated_id

    def tokens(self, tokens_id: str) -> Path:
        return self.root / "tokens" / tokens_id

    def cluster_tokens(self, groups_id: str) -> Path:
        """The token folder of `mix.groups: clusters`: one group (c0, c1, ...) per curation cluster."""
        return self.root / "tokens" / groups_id

    # data mixtures (isoflop.mix): the grid's mixture check, the search's rounds, the verification runs
    @property
    def mix(self) -> Path:
        return self.root / "mix"

    @property
    def mix_check(self) -> Path:
        return self.mix / "check.json"

    def mix_runs(self, stage: str) -> Path:
        """The runs a mixture stage ("round-<r>" of the search, or "final": verification and scaling) trains,
        run id -> record; written by that stage's checkpoint job."""
        return self.mix / stage / "runs.json"

    def mix_fit(self, round_index) -> Path:
        return self.mix / f"round-{round_index}" / "fit.json"

    def mix_run_dir(self, stage: str, run_id: str) -> Path:
        return self.mix / stage / "runs" / run_id

    @property
    def mix_summary(self) -> Path:
        return self.mix / "summary.json"

    # training
    @property
    def plan(self) -> Path:
        return self.root / "plan.json"

    def run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / run_id

    def run_result(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "result.json"

    def run_curve(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "curve.parquet"

    def trunk_dir(self, trunk_id: str) -> Path:
        return self.root / "trunks" / trunk_id

    def trunk_result(self, trunk_id: str) -> Path:
        return self.trunk_dir(trunk_id) / "result.json"

    def trunk_runs(self, trunk_id: str) -> Path:
        """The finished folders of the runs branched from the trunk (a declared output of the trunk's job,
        which trains them too); each run's own job publishes its folder to `run_dir`."""
        return self.trunk_dir(trunk_id) / "runs"

    def trunk_work(self, trunk_id: str) -> Path:
        """Where the trunk's job trains (the trunk, its saved branch states, the branches), kept across a kill
        so that the job resumes; removed once its outputs are published."""
        return self.trunk_dir(trunk_id) / "work"

    # the study's tail
    @property
    def runs_table(self) -> Path:
        return self.root / "runs.parquet"

    @property
    def laws(self) -> Path:
        return self.root / "laws.json"

    @property
    def ledger(self) -> Path:
        """The study's append-only forecast ledger (`isoflop.ledger.LEDGER` in its root), which the fit extends
        with each forecast it has not recorded yet."""
        return self.root / "forecasts.jsonl"

    @property
    def forecast_scores(self) -> Path:
        """The fit's forecasts scored against their landed runs (rule score_forecasts). The append-only ledger
        of every forecast with the time it was made is `isoflop.ledger.LEDGER` in the study's root, where
        `isoflop forecasts results/<study>` finds it and the runs that score it."""
        return self.root / "forecast_scores.json"

    @property
    def report(self) -> Path:
        return self.root / "report.md"

    @property
    def figures(self) -> Path:
        return self.root / "figures"

    # job records
    def log(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"

    @property
    def benchmarks(self) -> Path:
        return self.root / "benchmarks"

    def benchmark(self, name: str) -> Path:
        """A job's Snakemake benchmark; `name` is "<stage>" or "<stage>/<job>" (the report groups by stage)."""
        return self.benchmarks / f"{name}.tsv"

    # the MLflow view
    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.db"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.root / "mlflow" / "artifacts"

    @property
    def store_lock(self) -> Path:
        """fcntl lock held while a process creates the store's schema and the study's experiment."""
        return self.root / "mlflow" / "store.lock"

    @property
    def sync_lock(self) -> Path:
        """fcntl lock held for the whole of a sync, so concurrent `isoflop track-sync` runs take turns."""
        return self.root / "mlflow" / "sync.lock"

    @property
    def tracked(self) -> Path:
        return self.root / "mlflow" / "tracked.json"


# The working directory's Snakemake state, shared by every study run there (see isoflop.launch).
def snakemake_locks(workdir: str | Path = ".") -> Path:
    """Snakemake's lock files: written as a run starts, removed as it ends, left behind when it is killed."""
    return Path(workdir) / ".snakemake" / "locks"


def workdir_lock(workdir: str | Path = ".") -> Path:
    """The file a live run of the workflow holds an OS lock (flock) on for its lifetime."""
    return Path(workdir) / ".snakemake" / "isoflop.lock"
