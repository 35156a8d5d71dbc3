"""Atomic file writes and the saved training state (resume checkpoints and wsd branch points).

A state holds everything that determines the rest of a run: weights, optimizer moments, the step, the
torch RNG states (dropout), and the curve so far. The data order needs no cursor because it is a pure
function of (seed, step). Files are written to a temporary name in the same folder and renamed, so a
reader sees either the old file or the new one, never half of one, even if the writer is killed.
"""

from __future__ import annotations

from pathlib import Path

import torch

from isoflop.errors import UserError
from isoflop.workflow import atomic_write

# Spec fields that shape the trajectory up to a branch point; a run may continue another run's state
# only if these agree (the learning rates up to the branch point are compared separately).
TRAJECTORY_TRAIN_KEYS = (
    "batch_size", "micro_batch_size", "lr", "warmup_steps", "seed", "weight_decay", "beta1", "beta2",
    "grad_clip", "compile", "dtype",
)  # fmt: skip


def save_state(path: str | Path, state: dict) -> None:
    """Atomically ``torch.save`` a training state."""
    atomic_write(path, lambda handle: torch.save(state, handle))


def load_state(path: str | Path) -> dict:
    """A state written by ``save_state``, on the CPU. Only tensors and plain values are unpickled
    (``weights_only``): a file planted in a run folder cannot run code when the run resumes."""
    import pickle

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path}: training state not found") from None
    except pickle.UnpicklingError as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"{path}: refused, it is not a plain training state ({reason}); delete it to train "
                        "this run from the start") from None


def check_continuation(state: dict, spec: dict, fingerprint: str | None, path: str | Path) -> None:
    """Raise UserError unless a run of ``spec`` may continue from ``state`` (same model, data and
    optimizer settings; the caller compares learning rates). Names the first field that differs."""
    theirs = state["spec"]
    differences = [section for section in ("model", "mixture") if theirs[section] != spec[section]]
    differences += [f"train.{key}" for key in TRAJECTORY_TRAIN_KEYS if theirs["train"][key] != spec["train"][key]]
    if state.get("fingerprint") != fingerprint:
        differences.append("the token data (meta.json fingerprint)")
    if differences:
        raise UserError(f"{path}: cannot continue from this state, it differs in {', '.join(differences)}")
