"""Data-parallel training across processes with torch DistributedDataParallel, launched by `torchrun`.

A training loop written against these helpers runs unchanged as one plain process (world size 1, no process
group) and as N processes under `torchrun --nproc_per_node N` (one per GPU, or N CPU processes with gloo):

    dist_ctx = init_distributed(context.device)          # reads RANK / WORLD_SIZE / LOCAL_RANK set by torchrun
    model = wrap_model(model.to(dist_ctx.device), dist_ctx)
    for batch in batches:                                 # the same global batches, same order, on every rank
        part = shard_batch(batch, dist_ctx)               # this rank's rows of the global batch
        loss_sum = loss_fn(model(part...), reduction="sum")
        loss = global_mean(loss_sum, batch_size(batch), dist_ctx)  # mean over the GLOBAL batch after DDP's averaging
        optimizer.zero_grad(); loss.backward(); optimizer.step()
        report = all_reduce_sum(loss_sum.detach(), dist_ctx) / batch_size(batch)
    save_on_main(unwrap(model).state_dict(), path, dist_ctx)   # one writer; the others wait at the barrier
    shutdown(dist_ctx)

Every rank sees identical global batches (same seed, same shuffling) and keeps only its slice, so one step of N
processes equals one step of a single process on the whole batch: DDP averages gradients over ranks, and
`global_mean` scales each rank's summed loss so that average is the mean over the global batch, also when the
batch does not split evenly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from eager_bench.errors import BenchError

Batch = TypeVar("Batch", torch.Tensor, Sequence[Any], Mapping[str, Any])


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str | None  # None: a single process without a process group

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "cpu") -> DistContext:
    """Join the process group torchrun describes in the environment (nccl on CUDA, gloo on CPU).

    Without torchrun (no WORLD_SIZE, or 1) this is a single process on `device` and nothing is initialised.
    Under torchrun with CUDA, each process takes the GPU of its LOCAL_RANK.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise BenchError(f"--device {device}: no CUDA device is available on this machine")
    if world_size <= 1:
        return DistContext(0, 1, 0, torch.device(device), None)
    if cuda:
        if local_rank >= torch.cuda.device_count():
            raise BenchError(f"torchrun started local rank {local_rank} but this node has "
                             f"{torch.cuda.device_count()} GPU(s); lower --nproc_per_node")
        torch.cuda.set_device(local_rank)
        torch_device, backend = torch.device("cuda", local_rank), "nccl"
    else:
        torch_device, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistContext(rank, world_size, local_rank, torch_device, backend)


def wrap_model(model: nn.Module, ctx: DistContext, **ddp_options: Any) -> nn.Module:
    """DDP around a model already on ctx.device; the model itself when there is one process.

    DDP broadcasts rank 0's parameters at construction, so all ranks start from the same weights.
    """
    if not ctx.is_distributed:
        return model
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids, **ddp_options)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module (for state_dict, generation, custom methods) behind a DDP wrapper."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def batch_size(batch: Batch) -> int:
    """Rows of a batch: a tensor, or a tuple/list/dict of tensors sharing the first dimension."""
    if isinstance(batch, torch.Tensor):
        return batch.shape[0]
    first = next(iter(batch.values())) if isinstance(batch, Mapping) else batch[0]
    return batch_size(first)


def shard_batch(batch: Batch, ctx: DistContext) -> Batch:
    """This rank's contiguous rows of a global batch (sizes differ by at most one row when it does not divide)."""
    if not ctx.is_distributed:
        return batch
    if isinstance(batch, torch.Tensor):
        return torch.tensor_split(batch, ctx.world_size)[ctx.rank]
    if isinstance(batch, Mapping):
        return type(batch)({key: shard_batch(value, ctx) for key, value in batch.items()})
    return type(batch)(shard_batch(value, ctx) for value in batch)


def shard_batches(batches: Sequence[Batch], ctx: DistContext) -> list[Batch]:
    """Each global batch cut to this rank's rows: same number of steps as the single process, same global batch."""
    return [shard_batch(batch, ctx) for batch in batches]


def global_mean(local_sum: torch.Tensor, global_batch_size: int, ctx: DistContext) -> torch.Tensor:
    """The loss to backpropagate: DDP averages gradients over ranks, so scale this rank's summed loss by
    world_size / global batch size; the averaged gradient is then that of the mean loss over the global batch."""
    return local_sum * (ctx.world_size / global_batch_size)


def all_reduce_sum(value: torch.Tensor | float, ctx: DistContext) -> torch.Tensor:
    """The sum over ranks (a detached copy; the input is untouched). Identity for one process."""
    tensor = torch.as_tensor(value, dtype=torch.float64 if not isinstance(value, torch.Tensor) else None)
    tensor = tensor.detach().clone().to(ctx.device)
    if ctx.is_distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_mean(value: torch.Tensor | float, ctx: DistContext) -> torch.Tensor:
    """The mean over ranks (for per-rank averages of equal weight, e.g. a metric over equal shards)."""
    return all_reduce_sum(value, ctx) / ctx.world_size


def barrier(ctx: DistContext) -> None:
    if ctx.is_distributed:
        dist.barrier()


def save_on_main(obj: Any, path: Path, ctx: DistContext) -> None:
    """torch.save on rank 0 only (temp file + rename, so a killed job never leaves half a checkpoint); every rank
    leaves after the file exists, so a following load or resume on any rank sees it."""
    if ctx.is_main:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        torch.save(obj, tmp)
        os.replace(tmp, path)
    barrier(ctx)


def shutdown(ctx: DistContext) -> None:
    """Wait for every rank, then leave the process group (torchrun expects each process to exit cleanly)."""
    if ctx.is_distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
