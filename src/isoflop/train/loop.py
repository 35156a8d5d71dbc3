"""Training one run: ``train_run`` (one spec, from scratch, a checkpoint, or a wsd branch point) and
``train_trunk`` (the constant-lr trunk that wsd runs of one shape branch from; Hagele et al. 2024).

A run writes into its folder:

    curve.parquet   one row per step (kind "train": step, tokens, lr, train_loss) and one row per domain
                    and evaluation (kind "eval": step, tokens, lr, domain, val_loss, val_bpb; domain "*" is
                    the token-weighted mean over domains); every row has ``seconds``, when its step (or
                    evaluation) ended, in seconds since the run's ``started_at`` (negative for a branched
                    run's trunk steps, which were trained before the run started)
    result.json     written last and atomically: if it exists, the run is finished ("ok" or "diverged")
    ckpt.pt         the latest training state, every ``checkpoint_every`` steps, every
                    ``checkpoint_minutes`` of training and on SIGTERM (then the run exits); a rerun (after a
                    kill, a SLURM time limit or a pre-emption) resumes from it
    branch-<s>.pt   (trunks only) the training state after s steps

On the CPU, the same spec, seed and thread count give bit-identical results, whether the run went
straight through, was killed and resumed, or was branched from a trunk. Step ``s`` sees the batch drawn
from (data seed, s); init, data order and dropout use separate seeds derived from ``train.seed``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from isoflop.errors import UserError
from isoflop.tasks.evaluate import evaluate_run_tasks
from isoflop.tokens import read_meta
from isoflop.train import distributed
from isoflop.train.accounting import flops_per_token, param_counts
from isoflop.train.checkpoint import check_continuation, load_state, save_state
from isoflop.train.data import BatchSampler, eval_windows
from isoflop.train.distributed import SINGLE, Parallel
from isoflop.train.model import Transformer, lm_loss
from isoflop.train.optim import make_optimizer, set_lr
from isoflop.train.spec import RunSpec
from isoflop.integrity import write_result
from isoflop.train.throughput import measured_peak_flops, mfu
from isoflop.workflow import atomic_write

# spawn_key of each seed derived from train.seed: separate streams, so that changing one never moves another.
INIT_STREAM, DATA_STREAM, DROPOUT_STREAM = 0, 1, 2
ALL_DOMAINS = "*"


def derive_seed(seed: int, stream: int) -> int:
    """A 32-bit seed for one purpose (init, data, dropout), independent of the others."""
    return int(np.random.SeedSequence(seed, spawn_key=(stream,)).generate_state(1)[0])


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device={device!r} asked for, but torch {torch.__version__} sees no CUDA device")
    return torch.device(device)


def process_age_seconds() -> float | None:
    """Seconds since this process started (interpreter start and imports included), or None off Linux."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def sigterm_flag():
    """An Event set when SIGTERM arrives: SLURM's warning at a time limit or a pre-emption, KillWait seconds
    (30 by default) before SIGKILL, time enough to save the state. Off the main thread, a flag never set."""
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.signal(signal.SIGTERM, lambda *_: flag.set())
    try:
        yield flag
    finally:
        signal.signal(signal.SIGTERM, previous)


# The divergence check compares means of this many steps' train losses: one batch's loss varies with what it
# holds (under a mixture of groups of different entropy, by 2x from batch to batch), a blow-up does not stop.
DIVERGENCE_WINDOW = 10


def trailing_means(losses: np.ndarray, window: int) -> np.ndarray:
    """Means of each `window` consecutive losses (none for fewer losses)."""
    sums = np.cumsum(np.concatenate([[0.0], np.asarray(losses, dtype=np.float64)]))
    return (sums[window:] - sums[:-window]) / window


class Trainer:
    """The state of one run in progress; ``run`` trains to the end (or to divergence)."""

    def __init__(self, spec: dict, tokens_dir, out_dir, *, threads: int, device: str, progress: bool,
                 own_process: bool = True, checkpoint_minutes: float = 0.0, window_losses: bool = False,
                 parallel: Parallel = SINGLE):
        self.started = time.perf_counter()
        # a wall-clock cadence, not part of the spec: when a state is saved never changes the numbers
        self.checkpoint_seconds = 60.0 * checkpoint_minutes
        self.own_process = own_process  # wall_seconds then counts the process's start and imports too
        # epoch seconds at the start of what wall_seconds measures, so that ended_at - started_at = wall_seconds
        self.started_at = time.time() - ((process_age_seconds() or 0.0) if own_process else 0.0)
        self.run_spec = RunSpec.from_dict(spec)
        self.spec = self.run_spec.to_dict()
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.threads, self.progress = threads, progress
        self.window_losses = window_losses  # also write eval_windows.parquet (see write_window_losses)
        # one rank of several (isoflop.train.distributed): every rank trains, rank 0 alone writes files
        self.writes = distributed.rank() == 0
        self.world_size = distributed.world_size()
        self.device = distributed.local_device(resolve_device(device))
        torch.set_num_threads(threads)
        if self.device.type == "cpu":
            torch.use_deterministic_algorithms(True)

        cfg, t = self.run_spec.model, self.run_spec.train
        self.tokens_dir = Path(tokens_dir)  # its tokenizer scores the downstream tasks
        meta = read_meta(tokens_dir)
        if cfg.vocab_size != meta["vocab_size"]:
            raise UserError(f"model.vocab_size={cfg.vocab_size} but {tokens_dir}/meta.json has {meta['vocab_size']}")
        self.fingerprint = meta.get("fingerprint")
        self.sampler = BatchSampler(tokens_dir, self.run_spec.mixture, cfg.seq_len, t.batch_size, derive_seed(t.seed, DATA_STREAM))
        self.rows = distributed.rows_of_rank(t.batch_size)
        self.eval_data = {d: eval_windows(tokens_dir, d, cfg.seq_len, t.eval_tokens).to(self.device) for d in meta["domains"]}
        self.bytes_per_token = {d: info["val_bytes"] / info["val_tokens"] for d, info in meta["domains"].items()}
        self.train_tokens = {d: info["train_tokens"] for d, info in meta["domains"].items()}

        init = torch.Generator().manual_seed(derive_seed(t.seed, INIT_STREAM))
        self.model = Transformer(cfg, generator=init, mup_base_d_model=t.mup_base).to(self.device)
        self.shard = parallel.shard and self.world_size > 1
        self.trained = distributed.wrap(self.model, self.shard)  # the model itself, DDP or FSDP2
        self.optimizer = make_optimizer(self.model, t)
        torch.manual_seed(derive_seed(t.seed, DROPOUT_STREAM))
        self.forward = torch.compile(self.trained, dynamic=False) if t.compile else self.trained
        self.autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=t.dtype == "bfloat16")

        self.steps = self.run_spec.steps
        self.lrs = self.run_spec.lr_schedule()
        self.step = 0  # steps done
        self.train_losses = np.full(self.steps, np.nan)
        self.batch_hashes = [""] * self.steps  # of each step's global batch as the ranks trained on it
        self.step_times = np.full(self.steps, np.nan)  # epoch seconds at the end of each step
        self.eval_rows: list[dict] = []
        self.train_seconds = 0.0  # this run's own steps, resumed segments included, trunk excluded
        self.trained_steps = 0
        self.start_step = 0  # > 0 when branched from a trunk
        self.resumed = 0
        self.init_from = None
        self.diverged_step = None
        self.running_min = math.inf  # of the train loss's trailing means, for the divergence check

    # ---- state -------------------------------------------------------------------------------------
    def state(self) -> dict:
        return {
            "spec": self.spec,
            "fingerprint": self.fingerprint,
            "step": self.step,
            **distributed.full_state(self.model, self.optimizer, self.shard),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None,
            # arrays as tensors: a state loads with weights_only (see checkpoint.load_state)
            "train_losses": torch.from_numpy(self.train_losses[: self.step].copy()),
            "batch_hashes": self.batch_hashes[: self.step],
            "step_times": torch.from_numpy(self.step_times[: self.step].copy()),
            "started_at": self.started_at,
            "eval_rows": list(self.eval_rows),
            "train_seconds": self.train_seconds,
            "trained_steps": self.trained_steps,
            "start_step": self.start_step,
            "resumed": self.resumed,
            "init_from": self.init_from,
        }

    def restore(self, path: Path, *, branch: bool) -> None:
        """Continue from a saved state: this run's own checkpoint, or (branch=True) a trunk's branch point."""
        state = load_state(path)
        check_continuation(state, self.spec, self.fingerprint, path)
        step = state["step"]
        if step > self.steps:
            raise UserError(f"{path}: state is at step {step}, past this run's {self.steps} steps")
        if branch:
            trunk_lrs = RunSpec.from_dict(state["spec"]).lr_schedule()[:step]
            if not np.array_equal(trunk_lrs, self.lrs[:step]):
                raise UserError(
                    f"{path}: the trunk's learning rates before step {step} differ from this run's "
                    f"(a wsd run can branch only at or before its decay start)"
                )
        elif state["spec"] != self.spec:
            raise UserError(f"{path}: checkpoint of a different spec; delete it or use another out_dir")
        distributed.load_full_state(self.model, self.optimizer, state, self.shard)
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.step = step
        losses = state["train_losses"].numpy()
        self.train_losses[:step] = losses
        if "step_times" in state:  # states saved before timings have none
            self.step_times[:step] = state["step_times"].numpy()
        self.batch_hashes[:step] = state.get("batch_hashes", [""] * step)  # none in states saved before them
        self.running_min = float(np.min(trailing_means(losses, DIVERGENCE_WINDOW), initial=math.inf))
        self.eval_rows = [row for row in state["eval_rows"] if row["step"] <= step]
        if branch:
            self.start_step, self.init_from = step, str(path)
        else:
            self.train_seconds, self.trained_steps = state["train_seconds"], state["trained_steps"]
            self.started_at = state.get("started_at", self.started_at)  # a resumed run started with its first segment
            self.start_step, self.init_from = state["start_step"], state["init_from"]
            self.resumed = state["resumed"] + 1

    # ---- training ----------------------------------------------------------------------------------
    def train_step(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step on batch ``step`` (on several ranks, this rank's rows of it); returns the
        cross-entropy over the whole batch and its rows' hashes (device tensors, not synced)."""
        t = self.run_spec.train
        rows = self.sampler.batch(step)[self.rows]
        hashes = distributed.gather_rows(distributed.row_hashes(rows))
        batch = rows.to(self.device, non_blocking=True)
        set_lr(self.optimizer, float(self.lrs[step]))
        chunks = batch.split(t.micro_batch_size) if t.micro_batch_size else (batch,)
        total_ce = 0.0
        for index, chunk in enumerate(chunks):
            # the ranks average their gradients once per step, after the last micro-batch
            with distributed.gradient_sync(self.trained, index == len(chunks) - 1):
                with self.autocast:
                    ce, objective = lm_loss(self.forward(chunk[:, :-1]), chunk[:, 1:], self.run_spec.model.z_loss)
                share = len(chunk) / len(batch)
                (objective * share if len(chunks) > 1 else objective).backward()
            total_ce = total_ce + ce.detach() * share
        if t.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip, foreach=True)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return distributed.mean_over_ranks(total_ce), hashes

    def record_losses(self, first_step: int, pending: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Bring pending losses and batch hashes back from the device (one sync) and check the losses for
        divergence."""
        values = torch.stack([loss for loss, _ in pending]).double().cpu().numpy()
        for step, (_, hashes) in enumerate(pending, start=first_step):
            self.batch_hashes[step] = distributed.batch_digest(hashes.cpu().numpy())
        self.train_losses[first_step : first_step + len(values)] = values
        t = self.run_spec.train
        for step, loss in enumerate(values.tolist(), start=first_step):
            if not math.isfinite(loss):
                self.diverged_step = step
                return
            if step + 1 < DIVERGENCE_WINDOW:
                continue
            window = float(np.mean(self.train_losses[step + 1 - DIVERGENCE_WINDOW : step + 1]))
            if step >= t.warmup_steps and window > t.divergence_factor * self.running_min:
                self.diverged_step = step
                return
            self.running_min = min(self.running_min, window)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Mean val cross-entropy (nats per token) per domain."""
        self.model.eval()
        losses = {}
        batch = self.run_spec.train.micro_batch_size or self.run_spec.train.batch_size
        for domain, windows in self.eval_data.items():
            total = 0.0
            for chunk in windows.split(batch):
                with self.autocast:
                    ce, _ = lm_loss(self.model(chunk[:, :-1]), chunk[:, 1:])
                total += ce.item() * chunk[:, 1:].numel()
            losses[domain] = total / windows[:, 1:].numel()
        self.model.train()
        return losses

    def summarize_eval(self, losses: dict[str, float]) -> dict:
        """Per-domain and overall loss and bits per byte (overall: total bits over total bytes)."""
        counts = {d: self.eval_data[d][:, 1:].numel() for d in losses}
        tokens = sum(counts.values())
        bpb = {d: losses[d] / self.bytes_per_token[d] / math.log(2) for d in losses}
        nats = sum(losses[d] * counts[d] for d in losses)
        total_bytes = sum(counts[d] * self.bytes_per_token[d] for d in losses)
        return {
            "val_loss": nats / tokens,
            "val_loss_by_domain": losses,
            "val_bpb": nats / total_bytes / math.log(2),
            "val_bpb_by_domain": bpb,
        }

    def record_eval(self) -> None:
        """Evaluate now and append the rows to the curve."""
        summary = self.summarize_eval(self.evaluate())
        base = {"kind": "eval", "step": self.step, "tokens": self.step * self.run_spec.tokens_per_step,
                "lr": float(self.lrs[self.step - 1]) if self.step else 0.0, "time": time.time()}  # fmt: skip
        for domain, loss in summary["val_loss_by_domain"].items():
            self.eval_rows.append({**base, "domain": domain, "val_loss": loss, "val_bpb": summary["val_bpb_by_domain"][domain]})
        self.eval_rows.append({**base, "domain": ALL_DOMAINS, "val_loss": summary["val_loss"], "val_bpb": summary["val_bpb"]})

    def final_eval(self) -> dict:
        """The evaluation at the last step (done now unless the loop or a trunk already did it), as result fields."""
        if not self.eval_rows or self.eval_rows[-1]["step"] != self.step:
            self.record_eval()
        rows = [row for row in self.eval_rows if row["step"] == self.step]
        overall = next(row for row in rows if row["domain"] == ALL_DOMAINS)
        per_domain = [row for row in rows if row["domain"] != ALL_DOMAINS]
        return {
            "val_loss": overall["val_loss"],
            "val_loss_by_domain": {row["domain"]: row["val_loss"] for row in per_domain},
            "val_bpb": overall["val_bpb"],
            "val_bpb_by_domain": {row["domain"]: row["val_bpb"] for row in per_domain},
        }

    def run(self, save_states_at: dict[int, Path] | None = None) -> dict:
        """Train from ``self.step`` to the end; write curve.parquet, then result.json; return the result.
        On SIGTERM, save ckpt.pt after the step in progress and exit (a rerun resumes from it)."""
        with sigterm_flag() as terminated:
            return self._run(save_states_at, terminated)

    def _run(self, save_states_at: dict[int, Path] | None, terminated: threading.Event) -> dict:
        t = self.run_spec.train
        save_states_at = save_states_at or {}
        if 0 in save_states_at:
            self.save(save_states_at[0])
        report = Progress(self, bar=self.progress and sys.stderr.isatty())
        pending: list[tuple[torch.Tensor, torch.Tensor]] = []
        clock = last_checkpoint = time.perf_counter()
        while self.step < self.steps and self.diverged_step is None:
            pending.append(self.train_step(self.step))
            # on the CPU a step is done when train_step returns; on a GPU this is when it was queued, at most
            # log_every steps ahead of the device
            self.step_times[self.step] = time.time()
            self.step += 1
            self.trained_steps += 1
            done = self.step
            # the ranks agree: a wall-clock cadence or a SIGTERM on any rank checkpoints (and stops) all of them
            checkpoint, stop = distributed.any_rank(done < self.steps and bool(
                (t.checkpoint_every and done % t.checkpoint_every == 0)
                or (self.checkpoint_seconds and time.perf_counter() - last_checkpoint >= self.checkpoint_seconds)
                or terminated.is_set()
            ), done < self.steps and terminated.is_set())
            pause = (
                done == self.steps
                or done in save_states_at
                or (t.eval_every and done % t.eval_every == 0)
                or checkpoint
            )
            if not pause and len(pending) < t.log_every:
                continue
            self.record_losses(done - len(pending), pending)
            pending = []
            report.advance(done, self.train_losses[done - 1])
            if self.diverged_step is not None or not pause:
                continue
            self.train_seconds += time.perf_counter() - clock
            if t.eval_every and done % t.eval_every == 0:
                self.record_eval()
                report.line(f"step {done}/{self.steps}: val_loss {self.eval_rows[-1]['val_loss']:.4f}")
            if done in save_states_at:
                self.save(save_states_at[done])
                report.line(f"step {done}/{self.steps}: saved {save_states_at[done].name}")
            if checkpoint:
                self.save(self.out_dir / "ckpt.pt")
                report.line(f"step {done}/{self.steps}: checkpoint")
                last_checkpoint = time.perf_counter()
                if stop:
                    raise SystemExit(f"{self.out_dir.name}: SIGTERM at step {done}/{self.steps}: state saved to "
                                     "ckpt.pt, a rerun resumes from it")
            clock = time.perf_counter()
        self.train_seconds += time.perf_counter() - clock
        report.close()
        result = self.finish()
        report.finished(result)
        return result

    # ---- outputs -----------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Save the training state (every rank takes part in gathering a sharded one; rank 0 writes it)."""
        state = self.state()  # on ranks other than 0 a sharded run's weights and moments are left out
        if self.writes:
            save_state(path, state)

    def finish(self) -> dict:
        summary = self.final_eval() if self.diverged_step is None else {}
        if not all(math.isfinite(loss) for loss in summary.get("val_loss_by_domain", {}).values()):
            self.diverged_step = self.step  # finite train loss, but the model no longer evaluates
        ok = self.diverged_step is None
        if not ok:
            summary = dict.fromkeys(("val_loss", "val_loss_by_domain", "val_bpb", "val_bpb_by_domain"))
        else:
            summary.update(evaluate_run_tasks(self.model, self.run_spec.train.tasks, self.tokens_dir, self.device))
            # comparable across mixtures: every group's loss weighted by its share of the training tokens
            total = sum(self.train_tokens.values())
            summary["val_loss_natural"] = sum(self.train_tokens[d] / total * loss
                                              for d, loss in summary["val_loss_by_domain"].items())
        if self.window_losses:
            self.write_window_losses(evaluate=ok)
        drawn = self.sampler.tokens_drawn(self.step)
        if self.writes:
            self.write_curve()
        cfg = self.run_spec.model
        per_token = flops_per_token(cfg)
        tokens = self.step * self.run_spec.tokens_per_step
        final_loss = self.train_losses[self.step - 1] if self.step else math.nan
        age = process_age_seconds() if self.own_process else None
        elapsed = time.perf_counter() - self.started
        ended_at = time.time()
        tokens_per_second = (self.trained_steps * self.run_spec.tokens_per_step / self.train_seconds
                             if self.train_seconds else None)
        peak = measured_peak_flops(str(self.device), self.run_spec.train.dtype)
        result = {
            "status": "ok" if ok else "diverged",
            "diverged_step": self.diverged_step,
            **summary,
            "train_loss": float(final_loss) if math.isfinite(final_loss) else None,
            "steps": self.step,
            "tokens": tokens,
            "param_counts": param_counts(cfg),
            "flops_per_token": per_token,
            "flops": {name: value * tokens for name, value in per_token.items()},
            "start_step": self.start_step,
            "init_from": self.init_from,
            "resumed": self.resumed,
            "train_seconds": self.train_seconds,
            "tokens_per_second": tokens_per_second,
            # on CUDA: the model's FLOPs per second over the ranks' measured matmul peak (isoflop.train.throughput)
            "peak_flops_per_device": peak,
            "mfu": mfu(tokens_per_second, per_token["total"], peak, self.world_size),
            "run_seconds": elapsed,
            "wall_seconds": age if age is not None else elapsed,
            "started_at": self.started_at,
            "ended_at": ended_at,
            "torch_version": torch.__version__,
            "threads": self.threads,
            "device": str(self.device),
            "ranks": self.world_size,
            "tokens_fingerprint": self.fingerprint,
            "tokens_by_domain": drawn,
            "epochs_by_domain": {d: drawn[d] / self.train_tokens[d] for d in drawn},
            "spec": self.spec,
        }
        if self.writes:
            result = write_result(self.out_dir, result)  # sealed: hashes of itself and the curve (isoflop.integrity)
            (self.out_dir / "ckpt.pt").unlink(missing_ok=True)  # the run is complete; the state is dead weight
        distributed.barrier()  # no rank moves on (to a family's next run) before the result is written
        return result

    @torch.no_grad()
    def write_window_losses(self, *, evaluate: bool) -> None:
        """eval_windows.parquet: the final model's mean loss on each evaluation window of each domain, the
        units that the decision accuracy's bootstrap resamples (a pass of its own, so that val_loss is
        computed exactly as in a run without it); no rows for a diverged run."""
        self.model.eval()
        rows = [pd.DataFrame({"domain": pd.Series(dtype="string"), "window": pd.Series(dtype="int64"),
                              "loss": pd.Series(dtype="float64")})]
        batch = self.run_spec.train.micro_batch_size or self.run_spec.train.batch_size
        for domain, windows in self.eval_data.items() if evaluate else ():
            losses = []
            for chunk in windows.split(batch):
                with self.autocast:
                    logits = self.model(chunk[:, :-1])
                per_token = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), chunk[:, 1:].flatten(),
                                                              reduction="none")
                losses.append(per_token.view(len(chunk), -1).mean(dim=1).double().cpu())
            values = torch.cat(losses).numpy()
            rows.append(pd.DataFrame({"domain": domain, "window": np.arange(len(values)), "loss": values}))
        self.model.train()
        table = pd.concat(rows, ignore_index=True)
        if self.writes:
            atomic_write(self.out_dir / "eval_windows.parquet", lambda handle: table.to_parquet(handle, index=False))

    def write_curve(self) -> None:
        steps = np.arange(1, self.step + 1)
        train = pd.DataFrame({
            "kind": "train", "step": steps, "tokens": steps * self.run_spec.tokens_per_step,
            "lr": self.lrs[: self.step], "train_loss": self.train_losses[: self.step],
            "time": self.step_times[: self.step], "batch_hash": self.batch_hashes[: self.step],
        })  # fmt: skip
        curve = pd.concat([train, pd.DataFrame(self.eval_rows)], ignore_index=True)
        curve["seconds"] = curve.pop("time").astype("float64") - self.started_at
        for column in ("domain", "val_loss", "val_bpb"):
            if column not in curve:
                curve[column] = None
        curve = curve.astype({"domain": "string", "val_loss": "float64", "val_bpb": "float64", "batch_hash": "string"})
        atomic_write(self.out_dir / "curve.parquet", lambda handle: curve.to_parquet(handle, index=False))


class Progress:
    """What a run prints while it trains, to stderr: on a terminal (`bar`), a tqdm bar; otherwise (a rule's
    log file) one line as it starts, one per evaluation, saved state and checkpoint, and one as it ends,
    never carriage returns. Only printing: nothing here touches the run's numbers."""

    def __init__(self, trainer: Trainer, *, bar: bool):
        self.trainer = trainer
        self.bar = tqdm(total=trainer.steps, initial=trainer.step, file=sys.stderr, unit="step",
                        dynamic_ncols=True) if bar else None
        per_step = trainer.run_spec.tokens_per_step
        if trainer.resumed:
            where = f"resumed from step {trainer.step} of {trainer.steps}"
        else:
            where = f"at step {trainer.step} of {trainer.steps}" if trainer.step else f"{trainer.steps} steps"
        ranks = f" x {trainer.world_size} data-parallel ranks" if trainer.world_size > 1 else ""
        self.line(f"start: {where}, {trainer.steps * per_step:,} tokens ({per_step:,} per step), on {trainer.device}"
                  f"{ranks}")

    def line(self, text: str) -> None:
        """One line for the log (rank 0's; the other ranks are silent); a terminal has the bar instead."""
        if self.bar is None and self.trainer.writes:
            print(f"{self.trainer.out_dir.name}: {text}", file=sys.stderr, flush=True)

    def advance(self, done: int, train_loss: float) -> None:
        if self.bar is not None:
            self.bar.update(done - self.bar.n)
            self.bar.set_postfix(loss=f"{train_loss:.4f}", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def finished(self, result: dict) -> None:
        """The end summary: status, losses, this run's own training seconds and throughput."""

        def shown(value, spec):  # a diverged run has no val_loss; a run of no steps no throughput
            return "-" if value is None else format(value, spec)

        self.line(f"{result['status']} at step {result['steps']}: val_loss {shown(result['val_loss'], '.4f')}, "
                  f"train_loss {shown(result['train_loss'], '.4f')}, {result['train_seconds']:.1f} s training, "
                  f"{shown(result['tokens_per_second'], ',.0f')} tokens/s"
                  + (f", MFU {result['mfu']:.1%}" if result["mfu"] is not None else ""))


def train_run(
    spec: dict,
    tokens_dir,
    out_dir,
    *,
    threads: int = 1,
    device: str = "auto",
    progress: bool = True,
    init_from=None,
    own_process: bool = True,
    checkpoint_minutes: float = 0.0,
    window_losses: bool = False,
    parallel: Parallel = SINGLE,
) -> dict:
    """Train one run of ``spec`` on ``tokens_dir``, writing curve.parquet and (last) result.json to
    ``out_dir``; returns the result. Resumes from ``out_dir/ckpt.pt`` if there is one; otherwise, with
    ``init_from`` (a trunk's branch-<s>.pt), continues from that state, whose learning rates must match this
    spec's up to step s. A diverged run is reported in the result (status "diverged"), never raised.
    ``own_process=False`` (a run after others in one process): its wall_seconds is its own time alone.
    ``progress``: a tqdm bar when stderr is a terminal; otherwise, or when False, a line per evaluation
    (see `Progress`). ``checkpoint_minutes`` > 0 also saves ``out_dir/ckpt.pt`` after each that many minutes
    of training (the steps ``checkpoint_every`` sets are saved regardless). ``window_losses``: also write each
    evaluation window's final loss (eval_windows.parquet, what the mixture search's decision accuracy
    resamples). ``parallel``: train on that many data-parallel ranks (launched here, see
    ``isoflop.train.distributed``); the result is the same run's, up to float rounding."""
    if parallel.ranks > 1 and not distributed.running():
        # a bad spec fails here, in one line, before any rank starts
        distributed.check_split(RunSpec.from_dict(spec).train.batch_size, parallel.ranks)
        distributed.launch("train_run", {
            "spec": spec, "tokens_dir": str(tokens_dir), "out_dir": str(out_dir), "threads": threads,
            "device": device, "progress": progress, "init_from": None if init_from is None else str(init_from),
            "checkpoint_minutes": checkpoint_minutes, "window_losses": window_losses,
        }, parallel, Path(out_dir), Path(out_dir).name)
        return json.loads((Path(out_dir) / "result.json").read_text())
    distributed.barrier()  # every rank has seen whether a checkpoint exists before rank 0 can remove it
    trainer = Trainer(spec, tokens_dir, out_dir, threads=threads, device=device, progress=progress,
                      own_process=own_process, checkpoint_minutes=checkpoint_minutes, window_losses=window_losses,
                      parallel=parallel)
    checkpoint = trainer.out_dir / "ckpt.pt"
    if checkpoint.exists():
        trainer.restore(checkpoint, branch=False)
    elif init_from is not None:
        trainer.restore(Path(init_from), branch=True)
    return trainer.run()


def train_trunk(
    trunk_spec: dict,
    tokens_dir,
    out_dir,
    branch_steps,
    *,
    threads: int = 1,
    device: str = "auto",
    progress: bool = True,
    checkpoint_minutes: float = 0.0,
    parallel: Parallel = SINGLE,
) -> dict:
    """Train the constant-lr trunk of a shape and save its full state after each step in ``branch_steps``
    as ``out_dir/branch-<step>.pt``; wsd runs then start from those with ``train_run(..., init_from=...)``.
    The trunk runs ceil(tokens / tokens per step) steps; every branch step must lie in [0, that]."""
    if trunk_spec.get("train", {}).get("schedule") != "constant":
        raise UserError("train_trunk: the trunk's train.schedule must be 'constant'")
    trainer = Trainer(trunk_spec, tokens_dir, out_dir, threads=threads, device=device, progress=progress,
                      checkpoint_minutes=checkpoint_minutes, parallel=parallel)
    outside = sorted(s for s in branch_steps if not 0 <= s <= trainer.steps)
    if outside:
        raise UserError(f"train_trunk: branch steps {outside} lie outside the trunk's 0..{trainer.steps} steps")
    checkpoint = trainer.out_dir / "ckpt.pt"
    if checkpoint.exists():
        trainer.restore(checkpoint, branch=False)
    return trainer.run({int(s): trainer.out_dir / f"branch-{int(s)}.pt" for s in branch_steps})


def train_family(
    trunk_spec: dict,
    branches: dict[str, tuple[dict, int]],
    tokens_dir,
    work_dir,
    *,
    threads: int = 1,
    device: str = "auto",
    progress: bool = True,
    checkpoint_minutes: float = 0.0,
    parallel: Parallel = SINGLE,
) -> tuple[dict, dict[str, dict]]:
    """A trunk and the cooldowns branched from it, in one process: ``branches`` maps a run's name to (its wsd
    spec, its branch step). The trunk trains in ``work_dir/trunk`` and each branch in ``work_dir/<name>``;
    a folder whose result.json exists is done and is not trained again, and an unfinished one resumes from its
    checkpoint, so a killed family picks up where it stopped. One process pays torch's start-up once for the
    whole family, which is most of a small cooldown's cost. Returns (trunk result, {name: branch result}).
    ``parallel``: every member trains on that many data-parallel ranks, the family in one launch."""
    work_dir = Path(work_dir)
    if parallel.ranks > 1 and not distributed.running():
        distributed.check_split(RunSpec.from_dict(trunk_spec).train.batch_size, parallel.ranks)
        distributed.launch("train_family", {
            "trunk_spec": trunk_spec, "branches": {name: [spec, int(step)] for name, (spec, step) in branches.items()},
            "tokens_dir": str(tokens_dir), "work_dir": str(work_dir), "threads": threads, "device": device,
            "progress": progress, "checkpoint_minutes": checkpoint_minutes,
        }, parallel, work_dir, work_dir.name)
        return (json.loads((work_dir / "trunk" / "result.json").read_text()),
                {name: json.loads((work_dir / name / "result.json").read_text()) for name in branches})
    distributed.barrier()  # every rank decides what is done before rank 0 writes anything new
    trunk_dir = work_dir / "trunk"
    steps = sorted({int(step) for _, step in branches.values()})
    finished = trunk_dir / "result.json"
    if finished.exists():
        trunk = json.loads(finished.read_text())
    else:
        trunk = train_trunk(trunk_spec, tokens_dir, trunk_dir, steps, threads=threads, device=device,
                            progress=progress, checkpoint_minutes=checkpoint_minutes, parallel=parallel)
    results = {}
    for name, (spec, step) in branches.items():
        done = work_dir / name / "result.json"
        if done.exists():
            results[name] = json.loads(done.read_text())
        else:
            results[name] = train_run(spec, tokens_dir, work_dir / name, threads=threads, device=device,
                                      progress=progress, init_from=trunk_dir / f"branch-{int(step)}.pt",
                                      own_process=False, checkpoint_minutes=checkpoint_minutes, parallel=parallel)
    return trunk, results
