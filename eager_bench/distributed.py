"""Data-parallel training across processes with torch DistributedDataParallel, launched by `torchrun`.

A training loop written against these helpers runs unchanged as one plain process (world size 1, no process
group) and as N processes under `torchrun --nproc_per_node N` (one per GPU, or N CPU processes with gloo).
Inside a model's `fit`:

    ddp = current(self.context.device)                    # world size 1 unless launched by torchrun
    step_loss = loss_module(self.net.to(ddp.device), self._loss_sum, ddp)   # DDP around "batch -> summed loss"
    for batch in batches:                                 # the same global batches, same order, on every rank
        part = shard_batch(batch, ddp)                    # this rank's rows (shard an index tensor, or tensors)
        loss = global_mean(step_loss(*part), batch_size(batch), ddp)   # mean over the GLOBAL batch after DDP
        # (or, for a loss that is a mean over rows: rows, factor = shard_rows(index, ddp); loss = mean * factor)
        optimizer.zero_grad(); loss.backward(); optimizer.step()
        logged = all_reduce_sum(loss.detach(), ddp) / ddp.world_size   # the global mean loss, same on all ranks
    save_on_main(self.net.state_dict(), path, ddp)        # one writer; the others wait at the barrier

Every rank sees identical global batches (same seed, same shuffling) and keeps only its slice, so one step of N
processes equals one step of a single process on the whole batch: DDP averages gradients over ranks, and
`global_mean` scales each rank's summed loss so that average is the mean over the global batch, also when the
batch does not split evenly. DDP synchronises gradients only for computations run through the wrapper's forward,
hence `loss_module`. A whole run (`run_distributed`) makes rank 0 the only writer of the result file.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, TypeVar

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


_CURRENT: DistContext | None = None


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
    global _CURRENT
    if world_size <= 1:
        return DistContext(0, 1, 0, torch.device(device), None)
    if _CURRENT is not None and dist.is_initialized():
        return _CURRENT
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
    _CURRENT = DistContext(rank, world_size, local_rank, torch_device, backend)
    return _CURRENT


def current(device: str = "cpu") -> DistContext:
    """The context a model's fit should use: the process group torchrun set up (joined on first use), else one
    process on `device` (the run's --device)."""
    return init_distributed(device)


def wrap_model(model: nn.Module, ctx: DistContext, **ddp_options: Any) -> nn.Module:
    """DDP around a model already on ctx.device; the model itself when there is one process.

    DDP broadcasts rank 0's parameters at construction, so all ranks start from the same weights.
    """
    if not ctx.is_distributed:
        return model
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids, **ddp_options)


class LossModule(nn.Module):
    """`net` plus a function of a batch that returns the loss, as one module whose forward DDP can wrap.

    `loss_fn` may call any method of `net` (encoder, several heads): what matters to DDP is that it runs inside
    the wrapper's forward, where DDP prepares the gradient all-reduce of `net`'s parameters.
    """

    def __init__(self, net: nn.Module, loss_fn: Callable[..., torch.Tensor]) -> None:
        super().__init__()
        self.net = net
        self.loss_fn = loss_fn

    def forward(self, *batch: Any) -> torch.Tensor:
        return self.loss_fn(*batch)


def loss_module(net: nn.Module, loss_fn: Callable[..., torch.Tensor], ctx: DistContext,
                **ddp_options: Any) -> nn.Module:
    """A callable `batch -> loss` whose backward averages gradients over ranks (plain call for one process)."""
    return wrap_model(LossModule(net, loss_fn), ctx, **ddp_options)


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


def shard_rows(index: torch.Tensor, ctx: DistContext) -> tuple[torch.Tensor, float]:
    """This rank's rows of a global batch of row indices, and the factor that turns its mean loss into its share of
    the global mean (rows * world_size / global rows; DDP then averages over ranks).

    The factor is exactly 1.0 for a single process, so single-process numbers do not move by a rounding bit. A rank
    left without rows (a last batch smaller than the world) still runs a step, on one row with factor 0, because
    every rank must take part in DDP's gradient all-reduce.
    """
    mine = shard_batch(index, ctx)
    if len(mine) == 0:
        return index[:1], 0.0
    return mine, len(mine) * ctx.world_size / len(index)


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


def any_rank(flag: bool, ctx: DistContext) -> bool:
    """True on every rank when the flag is set on at least one (e.g. a time budget ran out on the slowest clock):
    ranks that disagree on stopping would leave the others waiting in the next collective."""
    if not ctx.is_distributed:
        return flag
    return float(all_reduce_sum(float(flag), ctx)) > 0


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
    global _CURRENT
    if ctx.is_distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    _CURRENT = None


def run_distributed(spec: Any, data_dir: Path | None = None, results_dir: Path | None = None, force: bool = False,
                    device: str = "cpu", show_progress: bool = True) -> Any:
    """One benchmark run under torchrun: every rank trains (DDP inside the model), rank 0 alone writes the result.

    Each rank gets its own device (cuda:LOCAL_RANK). The other ranks run the same code into a scratch results
    folder that is dropped, so collectives inside fit and ranking stay in step; rank 0's cached-or-not decision
    is shared so that no rank waits for a peer that skipped the run. Returns the RunOutcome on rank 0, None on the
    others. Without torchrun it is runner.run.
    """
    from eager_bench import settings
    from eager_bench.models.registry import get_model_class
    from eager_bench.results import read_run
    from eager_bench.runner import RunOutcome, planned_path, run

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not get_model_class(spec.model).data_parallel:
        raise BenchError(f"{spec.model} does not train data-parallel under torchrun (only models whose fit uses "
                         "eager_bench.distributed do: EAGER, TIGER); run it as one process")
    joined_here = not dist.is_initialized()  # a caller that set up the group keeps it (re-joining can hang)
    ctx = init_distributed(device)
    try:
        results_root = settings.results_dir(results_dir)
        path = planned_path(spec, results_root)
        cached = float(ctx.is_main and path.exists() and not force)
        if float(all_reduce_sum(cached, ctx)) > 0:
            return RunOutcome(path, read_run(path), cached=True) if ctx.is_main else None
        if ctx.is_main:
            return run(spec, data_dir=data_dir, results_dir=results_root, force=True, device=str(ctx.device),
                       show_progress=show_progress)
        with tempfile.TemporaryDirectory(prefix="eager-bench-rank-") as scratch:
            run(spec, data_dir=data_dir, results_dir=Path(scratch), force=True, device=str(ctx.device),
                show_progress=False)
        return None
    finally:
        if joined_here:
            shutdown(ctx)
        else:
            barrier(ctx)
