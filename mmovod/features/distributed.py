"""torch.distributed set-up shared by the multi-process tools (launched with `torchrun`).

Without torchrun (no WORLD_SIZE in the environment, or WORLD_SIZE=1) everything runs in one
process and no process group is created. Under torchrun each rank uses `cuda:<LOCAL_RANK>` when the
requested device is CUDA (NCCL backend), and the CPU with the gloo backend otherwise.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from mmovod.clip.factory import resolve_device

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str | None = None) -> DistContext:
    """Join the torchrun process group when launched by torchrun; pick this rank's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    torch_device = resolve_device(device)
    if world_size <= 1:
        return DistContext(0, 1, 0, torch_device)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch_device.type == "cuda":
        torch_device = torch.device("cuda", local_rank)
        torch.cuda.set_device(torch_device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch_device.type == "cuda" else "gloo")
    rank = dist.get_rank()
    log.debug("rank %d of %d on %s", rank, world_size, torch_device)
    return DistContext(rank, world_size, local_rank, torch_device)


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def all_agree(ctx: DistContext, ok: bool) -> bool:
    """True when `ok` holds on every rank (so all ranks stop together on a bad input)."""
    if not ctx.distributed:
        return ok
    flag = torch.tensor([0 if ok else 1], device=ctx.device if ctx.device.type == "cuda" else "cpu")
    dist.all_reduce(flag)
    return int(flag.item()) == 0


def shutdown(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()
