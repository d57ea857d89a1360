"""Training on several processes with ``torch.distributed``: ranks, each rank's share of the batches, agreement.

``torchrun`` starts the processes and sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; :func:`start_process_group`
joins them (gloo on CPU, NCCL on GPUs, one GPU per process by ``LOCAL_RANK``). The trainer then wraps the model in
``DistributedDataParallel`` (:func:`parallel_step`), gives each rank its share of the batches (a loader's ``shard``,
see :func:`rank_batches`) and decides everything that ends an epoch or the training the same way on every rank
(:func:`agree_max`, :func:`broadcast_from_main`). In a single process every helper here is a no-op.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch


def process_count(text: str | int) -> int:
    """A number of training processes, at least 1."""
    value = int(text)
    if value < 1:
        raise ValueError(f"nproc must be at least 1 (got {value})")
    return value


@dataclass(frozen=True)
class LaunchConfig:
    """How many training processes ``torchrun`` starts on this machine, and their torch threads."""

    nproc: int = field(default=1, metadata={
        "help": "training processes on this machine, started by torchrun (DistributedDataParallel: gloo on CPU, "
                "NCCL with one GPU per process when GPUs are used); each process takes batch-size examples a step",
        "parse": process_count, "metavar": "N"})
    threads: int | None = None  # torch threads per process; None: max(1, cores // nproc)

    def threads_per_process(self) -> int:
        """``threads``, else this machine's cores shared out: ``max(1, cores // nproc)``."""
        if self.threads:
            return self.threads
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return max(1, cores // self.nproc)

    def torchrun_command(self, module: str, args: Sequence[str], rendezvous: Sequence[str] = ("--standalone",)) -> list[str]:
        """``python -m torch.distributed.run RENDEZVOUS --nproc-per-node N -m MODULE ARGS``; ``rendezvous`` is
        ``--standalone`` (this machine alone) or the multi-node flags (``--nnodes``, ``--rdzv-endpoint``...)."""
        return [sys.executable, "-m", "torch.distributed.run", *rendezvous, "--nproc-per-node", str(self.nproc),
                "-m", module, *args]


# ---- where this process stands -------------------------------------------------------------------------------
def world_size() -> int:
    """Processes training together (1 outside a process group)."""
    dist = torch.distributed
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 outside a process group)."""
    dist = torch.distributed
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main_process() -> bool:
    """Rank 0: the process that writes checkpoints, the model and the logs."""
    return rank() == 0


def local_rank() -> int:
    """This process's rank on its machine (``LOCAL_RANK``, set by torchrun)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def start_process_group(device: torch.device) -> torch.device:
    """Join the processes torchrun started (its ``env://`` variables): NCCL when ``device`` is CUDA, else gloo.
    Returns this process's device (``cuda:LOCAL_RANK`` on GPUs)."""
    device = rank_device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.distributed.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device


def stop_process_group() -> None:
    """Leave the process group (when in one)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def rank_device(device: torch.device) -> torch.device:
    """A CUDA device becomes this process's GPU (``LOCAL_RANK``) when torchrun started it; others are kept."""
    if device.type != "cuda" or "LOCAL_RANK" not in os.environ:
        return device
    return torch.device("cuda", local_rank() % max(torch.cuda.device_count(), 1))


# ---- the batches of each rank --------------------------------------------------------------------------------
def rank_batches(batches: Sequence, rank: int, world: int, pad: bool = True) -> list:
    """Rank ``rank``'s share of an epoch's batches (the same list on every rank: same seed, same epoch): every
    ``world``-th batch from its rank on. ``pad``: the list is first extended with its own first batches (cycling)
    to a multiple of ``world``, so that every rank gets the same number of batches (a rank with fewer would wait
    forever for the others' gradients); without ``pad`` the shares are disjoint and cover the list exactly once
    (validation)."""
    if world <= 1:
        return list(batches)
    if pad and batches:
        total = -(-len(batches) // world) * world
        batches = [batches[i % len(batches)] for i in range(total)]
    return list(batches[rank::world])


def rank_batch_count(n_batches: int, rank: int, world: int, pad: bool = True) -> int:
    """``len(rank_batches(...))`` for a list of ``n_batches`` batches, without building it."""
    if world <= 1:
        return n_batches
    if pad:
        return -(-n_batches // world)
    return len(range(rank, n_batches, world))


def shard_loader(loader, pad: bool):
    """This rank's share of ``loader``'s batches, through the loader's ``shard(rank, world, pad)``; the loader
    itself in a single process. Training batches (``pad``) from a loader that cannot be split are a clear error;
    such a validation loader is scored whole on every rank (the same means, only slower)."""
    world = world_size()
    if world <= 1:
        return loader
    if not hasattr(loader, "shard"):
        if not pad:
            return loader
        raise TypeError(f"{type(loader).__name__} cannot split its batches across processes (it has no "
                        "shard(rank, world, pad)); train this kind with --nproc 1")
    return loader.shard(rank(), world, pad)


# ---- DistributedDataParallel around a model's step -----------------------------------------------------------
class _Step(torch.nn.Module):
    """A model's ``step(batch)`` as ``forward``: DistributedDataParallel synchronises the gradients of what its
    wrapped module's ``forward`` computed, and the trainer calls ``step``."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.model.step(batch)


def parallel_step(model: torch.nn.Module, device: torch.device) -> torch.nn.Module | None:
    """In a process group, ``model``'s step through DistributedDataParallel (call it with a batch: gradients are
    averaged across ranks in the backward pass); None in a single process (call ``model.step``). Parameters a batch leaves unused (a frozen or skipped
    branch) are allowed: correct for any model, at the cost of one walk over the autograd graph per step. Buffers
    are not synchronised at each step (the ranks' buffers are equal from the start)."""
    if world_size() <= 1:
        return None
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    # torch 2.13 renamed the per-step buffer broadcast; both spellings mean "not at every step"
    names = inspect.signature(DistributedDataParallel.__init__).parameters
    buffers = {"forward_sync_buffers": False} if "forward_sync_buffers" in names else {"broadcast_buffers": False}
    ids = [device] if device.type == "cuda" else None
    return DistributedDataParallel(_Step(model), device_ids=ids, output_device=device if ids else None,
                                   find_unused_parameters=True, **buffers)


# ---- agreeing across ranks -----------------------------------------------------------------------------------
def _collective_device() -> torch.device:
    """Where collective tensors live: this rank's GPU with NCCL, else the CPU."""
    if torch.distributed.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def agree_max(value: int) -> int:
    """The largest ``value`` any rank passes (every rank must call it at the same point): a stop one rank asks
    for stops them all at the same batch."""
    if world_size() <= 1:
        return value
    tensor = torch.tensor([value], dtype=torch.int64, device=_collective_device())
    torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX)
    return int(tensor.item())


def sum_across_ranks(values: Sequence[float]) -> list[float]:
    """Element-wise sums of ``values`` over every rank (float64)."""
    if world_size() <= 1:
        return list(values)
    tensor = torch.tensor(list(values), dtype=torch.float64, device=_collective_device())
    torch.distributed.all_reduce(tensor)
    return tensor.tolist()


def sum_dicts_across_ranks(sums: dict[str, float]) -> dict[str, float]:
    """Key-wise sums of every rank's ``sums`` (a key some rank lacks counts 0 there), in rank order, so that
    every rank gets the very same numbers."""
    if world_size() <= 1:
        return dict(sums)
    gathered: list[Any] = [None] * world_size()
    torch.distributed.all_gather_object(gathered, dict(sums))
    total: dict[str, float] = {}
    for part in gathered:
        for key, value in part.items():
            total[key] = total.get(key, 0.0) + value
    return total


def broadcast_from_main(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (picklable objects)."""
    if world_size() <= 1:
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]
