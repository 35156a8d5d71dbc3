"""One run on many devices: data-parallel ranks, launched by ``torchrun`` on one machine or by ``srun``
inside a SLURM allocation, each rank training on its slice of every global batch.

``train.devices`` ranks per node times ``train.nodes`` nodes train one run. The global batch stays the
spec's ``train.batch_size``: batch ``step`` is still drawn from (data seed, step) alone, and rank r of W
takes its rows ``[r B/W, (r+1) B/W)``, splitting them further into ``micro_batch_size`` chunks (gradient
accumulation) when set. Gradients are averaged over ranks (DDP, or FSDP2 ``fully_shard`` when
``train.shard`` is set), so a step's update is the one-device update up to float rounding: the run id (which
hashes the spec, never the device count) and the tokens it sees do not depend on how many devices train it.

Only rank 0 writes files (curve, result, checkpoints, branch states); a checkpoint holds full, unsharded
tensors in the one-device format, so a run saved on W ranks resumes on any number. On the CPU the ranks talk
through gloo, so all of this runs (and is tested) without a GPU; on CUDA through NCCL, one GPU per rank.

A rank that dies takes the others down (torchrun's agent, or srun's ``--kill-on-bad-exit``) and the launch
fails with one line naming the rank; the job's rerun resumes from the last checkpoint.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from isoflop.errors import UserError
from isoflop.workflow import write_json


@dataclass(frozen=True)
class Parallel:
    """How one run is spread over devices (``train.devices``, ``train.nodes``, ``train.shard``). Not part
    of a run's spec: it changes how fast a run trains, not what it computes."""

    devices: int = 1
    nodes: int = 1
    shard: bool = False

    @classmethod
    def of(cls, train_config: dict) -> Parallel:
        return cls(int(train_config.get("devices", 1)), int(train_config.get("nodes", 1)),
                   bool(train_config.get("shard", False)))

    @property
    def ranks(self) -> int:
        return self.devices * self.nodes

    def to_dict(self) -> dict:
        return {"devices": self.devices, "nodes": self.nodes, "shard": self.shard}


SINGLE = Parallel()


def running() -> bool:
    """True inside a rank of a launched run (the process group is up)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if running() else 0


def world_size() -> int:
    return dist.get_world_size() if running() else 1


def local_device(device: torch.device) -> torch.device:
    """A rank's device: on CUDA the GPU of its local rank (one GPU per rank), else ``device`` unchanged."""
    if device.type == "cuda" and running():
        index = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    return device


def rows_of_rank(batch_size: int) -> slice:
    """This rank's rows of a global batch: a contiguous block, so that ranks 0..W-1 together hold the
    batch's rows in order."""
    check_split(batch_size, world_size())
    share = batch_size // world_size()
    return slice(rank() * share, (rank() + 1) * share)


def check_split(batch_size: int, ranks: int) -> None:
    if batch_size % ranks:
        raise UserError(f"train.batch_size={batch_size} does not split over {ranks} data-parallel ranks "
                        "(train.devices x train.nodes must divide it)")


def wrap(model: torch.nn.Module, shard: bool) -> torch.nn.Module:
    """What the training forward runs through: the model itself on one rank, DDP (replicated weights,
    gradients all-reduced) on several, or with ``shard`` FSDP2 (``fully_shard`` per block, then the root:
    weights, gradients and optimizer state split over ranks). FSDP2 changes ``model`` in place."""
    if world_size() == 1:
        return model
    if shard:
        from torch.distributed.fsdp import fully_shard

        for block in model.blocks:
            fully_shard(block)
        return fully_shard(model)
    from torch.nn.parallel import DistributedDataParallel

    device = next(model.parameters()).device
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


@contextlib.contextmanager
def gradient_sync(trained: torch.nn.Module, enabled: bool):
    """Around one micro-batch's backward: gradients are reduced over ranks only on the last micro-batch of
    a step (the others accumulate locally)."""
    from torch.nn.parallel import DistributedDataParallel

    if isinstance(trained, DistributedDataParallel) and not enabled:
        with trained.no_sync():
            yield
        return
    if hasattr(trained, "set_requires_gradient_sync"):  # FSDP2
        trained.set_requires_gradient_sync(enabled)
    yield


def mean_over_ranks(value: torch.Tensor) -> torch.Tensor:
    """The mean of a scalar over ranks (each rank's loss is the mean over equal shares of the batch)."""
    if world_size() == 1:
        return value
    total = value.detach().clone().double()
    dist.all_reduce(total)
    return total / world_size()


def any_rank(*flags: bool) -> tuple[bool, ...]:
    """Each flag true on any rank, so that every rank takes the same branch (checkpoint now, stop now)."""
    if world_size() == 1:
        return tuple(bool(flag) for flag in flags)
    values = torch.tensor([int(bool(flag)) for flag in flags], dtype=torch.int64, device=_collective_device())
    dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return tuple(bool(value) for value in values.tolist())


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def _collective_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


# ---- saved states ---------------------------------------------------------------------------------------------


def full_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, shard: bool) -> dict:
    """The weights and optimizer state as one device holds them (``state_dict()``'s format, parameters
    numbered in the optimizer's order), whatever the number of ranks: replicated ranks hold them already;
    sharded ones gather them (a collective: every rank calls this; rank 0 receives them on the CPU)."""
    if not shard:
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    weights, by_name = get_state_dict(model, optimizer, options=options)
    if not weights:  # a rank other than 0: it took part in the gathering and receives nothing
        return {}
    index = {name: number for number, name in enumerate(_names_in_optimizer_order(model, optimizer))}
    return {"model": weights, "optimizer": {
        "state": {index[name]: value for name, value in by_name["state"].items()},
        "param_groups": [{**group, "params": [index[name] for name in group["params"]]}
                         for group in by_name["param_groups"]],
    }}


def load_full_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict, shard: bool) -> None:
    """Load what ``full_state`` saved (on any number of ranks), sharding it again when ``shard``."""
    if not shard:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

    names = _names_in_optimizer_order(model, optimizer)
    saved = state["optimizer"]
    by_name = {
        "state": {names[number]: value for number, value in saved["state"].items()},
        "param_groups": [{**group, "params": [names[number] for number in group["params"]]}
                         for group in saved["param_groups"]],
    }
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=by_name,
                   options=StateDictOptions(full_state_dict=True))


def _names_in_optimizer_order(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """The parameters' names in the order ``optimizer.state_dict()`` numbers them."""
    name_of = {id(param): name for name, param in model.named_parameters()}
    return [name_of[id(param)] for group in optimizer.param_groups for param in group["params"]]


# ---- what each step saw -------------------------------------------------------------------------------------

_ROW_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # odd: a polynomial hash over 2^64 that mixes every position


def row_hashes(rows: torch.Tensor) -> torch.Tensor:
    """A 64-bit hash per row of token ids (int64, shape (rows,)), computed where the rows were drawn."""
    tokens = rows.numpy().astype(np.uint64)
    powers = np.cumprod(np.full(tokens.shape[1], _ROW_MULTIPLIER, dtype=np.uint64))
    with np.errstate(over="ignore"):
        return torch.from_numpy(((tokens + np.uint64(1)) * powers).sum(axis=1).view(np.int64))


def gather_rows(hashes: torch.Tensor) -> torch.Tensor:
    """Every rank's row hashes, in rank order: the global batch's rows as the ranks trained on them."""
    if world_size() == 1:
        return hashes
    local = hashes.to(_collective_device())
    parts = [torch.empty_like(local) for _ in range(world_size())]
    dist.all_gather(parts, local)
    return torch.cat(parts)


def batch_digest(hashes: np.ndarray) -> str:
    """The hash of one step's global batch, from its rows' hashes in order (16 hex digits)."""
    import hashlib

    return hashlib.blake2b(np.ascontiguousarray(hashes, dtype=np.int64).tobytes(), digest_size=8).hexdigest()


# ---- launching -----------------------------------------------------------------------------------------------

LAUNCH_FILE = "launch.json"
USER_ERROR = "isoflop rank error: "  # how a rank passes a UserError's one line to the launcher


def launch(entry: str, kwargs: dict, parallel: Parallel, work_dir: Path, name: str) -> None:
    """Run ``isoflop.train.loop.<entry>(**kwargs)`` on ``parallel.ranks`` ranks and wait for them: inside a
    SLURM allocation with srun (one task per rank), else with torchrun on this machine. Raises UserError
    with one line (the failed rank, the resume) when a rank fails."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    request = work_dir / LAUNCH_FILE
    write_json(request, {"entry": entry, "kwargs": kwargs, "parallel": parallel.to_dict()})
    worker = [sys.executable, "-m", "isoflop.train.rank", str(request)]
    env = dict(os.environ)
    if os.environ.get("SLURM_JOB_ID") and shutil.which("srun"):
        env.update(MASTER_ADDR=_first_node(), MASTER_PORT=str(_free_port()))
        command = ["srun", f"--ntasks={parallel.ranks}", f"--nodes={parallel.nodes}",
                   f"--ntasks-per-node={parallel.devices}", "--kill-on-bad-exit=1", "--overlap", *worker]
    elif parallel.nodes > 1:
        raise UserError(f"train.nodes={parallel.nodes}: several nodes train one run only inside a SLURM allocation "
                        "(workflow/profiles/slurm); outside one, use train.nodes: 1")
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc-per-node={parallel.devices}", *worker[1:]]
    print(f"{name}: {parallel.ranks} ranks: {' '.join(command)}", file=sys.stderr, flush=True)
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               errors="replace")
    tail: list[str] = []
    for line in process.stdout:  # passed through to the job's log, and kept to name a failed rank
        sys.stderr.write(line)
        tail = (tail + [line])[-200:]
    code = process.wait()
    said = [line[len(USER_ERROR):].strip() for line in tail if line.startswith(USER_ERROR)]
    if code and said:
        raise UserError(said[0])
    if code:
        raise UserError(f"{name}: training on {parallel.ranks} ranks failed ({_failed_rank(''.join(tail), code)}); "
                        "the log above has its error; a rerun resumes from the last checkpoint")
    request.unlink(missing_ok=True)


def _failed_rank(text: str, code: int) -> str:
    """Which rank failed and how, from torchrun's or srun's last words."""
    root_cause = text.rsplit("Root Cause", 1)[-1]  # torchrun lists the first failure there, the others above
    torchrun = re.findall(r"rank\s*:\s*(\d+) \(local_rank.*\n\s*exitcode\s*:\s*(-?\d+)", root_cause)
    if torchrun:
        failed, status = torchrun[0]
        status = int(status)
        raised = re.findall(rf"^\[rank{failed}\]: (\w+(?:Error|Exception)\b.*)$", text, re.MULTILINE)
        how = f"killed by signal {-status}" if status < 0 else (raised[-1] if raised else f"exit status {status}")
        return f"rank {failed} {how}"
    srun = re.findall(r"task (\d+): ([^\n]+)", text)
    if srun:
        return f"rank {srun[0][0]}: {srun[0][1].strip()}"
    return f"launcher exit status {code}"


def _first_node() -> str:
    """The host of rank 0: the allocation's first node."""
    nodes = os.environ.get("SLURM_JOB_NODELIST", "")
    if nodes and shutil.which("scontrol"):
        listed = subprocess.run(["scontrol", "show", "hostnames", nodes], capture_output=True, text=True,
                                check=False)
        if listed.returncode == 0 and listed.stdout.split():
            return listed.stdout.split()[0]
    return socket.gethostname()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("", 0))
        return probe.getsockname()[1]
