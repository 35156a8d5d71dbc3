"""One rank of a data-parallel run: what `torchrun` or `srun` starts (`python -m isoflop.train.rank REQUEST`)
for each rank that `isoflop.train.distributed.launch` asks for. It sits above the training loop, which
uses `distributed` for everything else, so that neither module imports the other's caller."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from isoflop.errors import UserError
from isoflop.train import loop
from isoflop.train.distributed import USER_ERROR, Parallel, rank


def rank_environment() -> None:
    """torchrun sets RANK, WORLD_SIZE, LOCAL_RANK; srun sets SLURM_PROCID and friends instead."""
    if "RANK" not in os.environ and "SLURM_PROCID" in os.environ:
        os.environ.update(RANK=os.environ["SLURM_PROCID"], WORLD_SIZE=os.environ["SLURM_NTASKS"],
                          LOCAL_RANK=os.environ.get("SLURM_LOCALID", "0"))


def main(request_path: str) -> None:
    """One rank: join the process group, train, leave."""
    rank_environment()
    request = json.loads(Path(request_path).read_text())
    device = request["kwargs"].get("device", "auto")
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    dist.init_process_group("nccl" if cuda else "gloo")
    try:
        kwargs = dict(request["kwargs"], parallel=Parallel(**request["parallel"]))
        if rank() != 0:
            kwargs["progress"] = False
        getattr(loop, request["entry"])(**kwargs)
    except UserError as err:
        print(f"{USER_ERROR}{err}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
