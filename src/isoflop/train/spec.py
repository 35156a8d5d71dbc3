"""A training run's spec: parsed, defaulted and checked, with the numbers derived from it.

A spec is a plain dict (it is what the planner hashes into a run id):

    {"model": {ModelConfig fields}, "mixture": {"<domain>": weight, ...}, "train": {TrainConfig fields}}
"""

from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, fields

import numpy as np

from isoflop.errors import UserError
from isoflop.train.shapes import ModelConfig
from isoflop.train.schedule import decay_start, lr_schedule

DTYPES = ("float32", "bfloat16")
PARAMETRIZATIONS = ("standard", "mup")
# at these values the parametrisation keys are left out of a spec's dict, so specs (and the trunk ids hashed
# from them) written before muP existed are unchanged
STANDARD = {"parametrization": "standard", "mup_base_d_model": 0}


@dataclass(frozen=True)
class TrainConfig:
    """The ``train`` section of a spec. ``tokens`` is the budget D; the run trains ``steps`` full steps."""

    tokens: int
    batch_size: int
    lr: float
    warmup_steps: int
    seed: int
    schedule: str = "cosine"
    min_lr_frac: float = 0.1
    decay_frac: float = 0.2
    decay_shape: str = "linear"
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    micro_batch_size: int = 0  # sequences per forward/backward; 0 = the whole batch at once
    eval_every: int = 0  # steps; 0 = only at the end
    eval_tokens: int = 65536  # at most this many val tokens per domain
    log_every: int = 10  # steps between reading the loss back from the device (and divergence checks)
    divergence_factor: float = 2.0  # diverged when a 10-step mean train loss exceeds this times its running minimum
    checkpoint_every: int = 0  # steps; 0 = never
    compile: bool = False
    dtype: str = "float32"
    tasks: list | None = None  # downstream tasks scored at the end (isoflop.tasks.results.study_tasks)
    parametrization: str = "standard"  # or "mup": see isoflop.train.model; `lr` then applies at mup_base_d_model
    mup_base_d_model: int = 0  # muP's base width (where it equals the standard parametrisation); mup only

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise UserError(f"train.dtype={self.dtype!r}: expected one of {DTYPES}")
        if self.parametrization not in PARAMETRIZATIONS:
            raise UserError(f"train.parametrization={self.parametrization!r}: expected one of {PARAMETRIZATIONS}")
        if (self.parametrization == "mup") != (self.mup_base_d_model > 0):
            raise UserError(f"train.mup_base_d_model={self.mup_base_d_model}: a positive base width is needed with "
                            "train.parametrization 'mup', and none (0) with 'standard'")
        for name in ("tokens", "batch_size", "log_every"):
            if getattr(self, name) < 1:
                raise UserError(f"train.{name}={getattr(self, name)} must be a positive integer")
        for name in ("micro_batch_size", "eval_every", "checkpoint_every", "warmup_steps", "eval_tokens"):
            if getattr(self, name) < 0:
                raise UserError(f"train.{name}={getattr(self, name)} must be >= 0")
        if self.micro_batch_size and self.batch_size % self.micro_batch_size:
            raise UserError(
                f"train.micro_batch_size={self.micro_batch_size} does not divide train.batch_size={self.batch_size}"
            )
        if self.lr <= 0:
            raise UserError(f"train.lr={self.lr} must be positive")

    @property
    def mup_base(self) -> int | None:
        """muP's base width, or None under the standard parametrisation (``Transformer``'s argument)."""
        return self.mup_base_d_model if self.parametrization == "mup" else None

    def to_dict(self) -> dict:
        """The fields, less the optional ones while they hold their defaults (the parametrisation keys while
        standard, `tasks` while unset), so the specs and ids of studies that use neither stay as they were."""
        values = asdict(self)
        if all(values[key] == value for key, value in STANDARD.items()):
            for key in STANDARD:
                del values[key]
        if values["tasks"] is None:
            del values["tasks"]
        return values


@dataclass(frozen=True)
class RunSpec:
    """A parsed spec. ``to_dict`` gives back the full spec with every default filled in."""

    model: ModelConfig
    mixture: dict[str, float]
    train: TrainConfig

    @classmethod
    def from_dict(cls, spec: dict) -> RunSpec:
        """Parse and check a spec dict; errors name the offending key."""
        unknown = sorted(set(spec) - {"model", "mixture", "train"})
        if unknown:
            raise UserError(f"spec: unknown sections {unknown}; expected model, mixture, train")
        for section in ("model", "mixture", "train"):
            if not isinstance(spec.get(section), dict):
                raise UserError(f"spec.{section} is missing or not a mapping")
        mixture = {str(name): float(weight) for name, weight in spec["mixture"].items()}
        if any(w < 0 or not math.isfinite(w) for w in mixture.values()) or not sum(mixture.values()) > 0:
            raise UserError(f"spec.mixture={mixture}: weights must be finite, >= 0, and not all zero")
        known = {f.name for f in fields(TrainConfig)}
        extra = sorted(set(spec["train"]) - known)
        if extra:
            raise UserError(f"train: unknown keys {extra}; known: {sorted(known)}")
        missing = sorted(f.name for f in fields(TrainConfig) if f.default is MISSING and f.name not in spec["train"])
        if missing:
            raise UserError(f"train: missing keys {missing}")
        parsed = cls(ModelConfig.from_dict(spec["model"]), mixture, TrainConfig(**spec["train"]))
        parsed.lr_schedule()  # checks the schedule's settings now rather than mid-run
        return parsed

    def to_dict(self) -> dict:
        return {"model": self.model.to_dict(), "mixture": dict(self.mixture), "train": self.train.to_dict()}

    @property
    def tokens_per_step(self) -> int:
        return self.train.batch_size * self.model.seq_len

    @property
    def steps(self) -> int:
        """ceil(D / tokens per step): a run trains at least its budget."""
        return math.ceil(self.train.tokens / self.tokens_per_step)

    def lr_schedule(self) -> np.ndarray:
        t = self.train
        return lr_schedule(
            self.steps, lr=t.lr, schedule=t.schedule, warmup_steps=t.warmup_steps,
            min_lr_frac=t.min_lr_frac, decay_frac=t.decay_frac, decay_shape=t.decay_shape,
        )  # fmt: skip


def _schedule_of(spec: dict) -> RunSpec:
    """`spec` parsed for its schedule alone: at plan time the mixture may still be a name ("natural", resolved
    from the token counts when the run starts), and it does not shape the schedule."""
    mixture = spec.get("mixture")
    return RunSpec.from_dict({**spec, "mixture": mixture if isinstance(mixture, dict) else {"*": 1.0}})


def branch_step(spec: dict) -> int:
    """The step at which a wsd run's decay begins: runs of one shape (same spec but ``tokens``) can share
    a constant-lr trunk up to here, and each needs only its decay steps on top (see ``train_trunk``)."""
    parsed = _schedule_of(spec)
    if parsed.train.schedule != "wsd":
        raise UserError(f"branch_step: train.schedule is {parsed.train.schedule!r}, only 'wsd' runs branch")
    return decay_start(parsed.steps, parsed.train.decay_frac)


def trunk_spec(wsd_specs) -> dict:
    """The constant-lr trunk that wsd runs of one shape (specs equal but for ``train.tokens``) branch from:
    their spec with schedule "constant" and just enough tokens to reach the latest branch step. Train it
    with ``train_trunk(trunk, ..., branch_steps=[branch_step(s) for s in wsd_specs])``. The planner derives
    every study's trunks here."""
    wsd_specs = list(wsd_specs)
    if not wsd_specs:
        raise UserError("trunk_spec: no runs given")
    parsed = [_schedule_of(spec) for spec in wsd_specs]
    shapes = [spec.to_dict() for spec in parsed]
    for shape in shapes:
        shape["train"]["tokens"] = 0
    if any(shape != shapes[0] for shape in shapes[1:]) or any(
            spec["mixture"] != wsd_specs[0]["mixture"] for spec in wsd_specs[1:]):
        raise UserError("trunk_spec: the runs differ in more than train.tokens, so they cannot share a trunk")
    latest = max(branch_step(spec) for spec in wsd_specs)
    trunk = parsed[0].to_dict()
    trunk["mixture"] = wsd_specs[0]["mixture"]
    trunk["train"].update(schedule="constant", tokens=max(1, latest) * parsed[0].tokens_per_step)
    return trunk
