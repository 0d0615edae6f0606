"""Data-parallel training over ``torch.distributed`` (torchrun: NCCL on GPUs, gloo on CPUs).

Every process holds a full copy of the model, reads its own shard of each epoch's
permutation, averages gradients with ``all_reduce`` before each optimizer step, and
averages the logged scalars before the model's hook, so a model's controller state is
updated from the same numbers on every process.  Rank 0 alone writes files.

We reduce gradients ourselves (one flat ``all_reduce`` per player per step) instead of
wrapping the players in ``DistributedDataParallel``: the contract lets a model call its
discriminator several times before a backward (WGAN-GP's real, fake and interpolates;
BEGAN's shared forward is back-propagated twice), which DDP's reducer does not allow
without ``static_graph`` tricks.  The arithmetic is DDP's: the mean of the per-process
gradients.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class ProcessGroup:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def init_from_env(device: torch.device) -> ProcessGroup:
    """Join the process group torchrun describes in the environment; a no-op for one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return ProcessGroup()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return ProcessGroup(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def average_gradients(group: ProcessGroup):
    def sync(params: list[torch.nn.Parameter]) -> None:
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= group.world_size
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    return sync


def average_logs(group: ProcessGroup):
    def reduce(logs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        keys = sorted(logs)
        stacked = torch.stack([logs[k].detach().to(torch.float64) for k in keys])
        dist.all_reduce(stacked)
        stacked /= group.world_size
        return {k: stacked[i].to(logs[k].dtype) for i, k in enumerate(keys)}

    return reduce


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Give every process rank 0's buffers (batch norm's running statistics), as DDP's ``broadcast_buffers`` does.

    Gradients are averaged, so parameters stay equal; buffers a forward pass updates from the local batch do
    not, and would drift apart per process without this.
    """
    buffers = [b for b in module.buffers() if b.is_floating_point() or b.dtype in (torch.int64, torch.int32)]
    if buffers:
        flat = torch.cat([b.detach().reshape(-1).to(torch.float64) for b in buffers])
        dist.broadcast(flat, src=0)
        offset = 0
        for b in buffers:
            b.copy_(flat[offset : offset + b.numel()].view_as(b).to(b.dtype))
            offset += b.numel()


def any_process(flag: int, device: torch.device) -> int:
    """The largest of every process's ``flag`` (e.g. a stop signal's number, 0 for none): one decision for all."""
    value = torch.tensor([flag], dtype=torch.int64, device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return int(value.item())


def broadcast_state(module: torch.nn.Module) -> None:
    """Make every process start from rank 0's parameters and buffers."""
    for tensor in module.state_dict().values():
        dist.broadcast(tensor, src=0)


def check_in_sync(module: torch.nn.Module, group: ProcessGroup) -> None:
    """Raise if any process's parameters or buffers (controller state included) differ from rank 0's."""
    checksum = torch.stack([t.detach().double().sum() for t in module.state_dict().values() if t.is_floating_point()])
    gathered = [torch.zeros_like(checksum) for _ in range(group.world_size)]
    dist.all_gather(gathered, checksum)
    if any(not torch.equal(gathered[0], g) for g in gathered[1:]):
        raise RuntimeError("processes hold different model states; gradients or logs were not averaged alike.")
