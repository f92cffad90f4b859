"""Evaluation sharded over processes with ``torch.distributed`` (launched by ``torchrun``), or not at all.

With ``P`` processes and ``N`` images, process ``r`` takes a contiguous block of the dataset
(:func:`shard_range`, aligned to whole batches), computes what it can on its block, and the blocks are
merged: evaluator counts are summed (``all_reduce``), per-image lists and feature rows are gathered in
rank order, which IS dataset order for contiguous blocks. Because every count camlib's evaluators keep
is additive over disjoint images and every process sees exactly the batches a single process would
(same images, same batch boundaries), the merged metrics and features equal those of a one-process run.

    torchrun --standalone --nproc_per_node=2 -m camlib.evaluate ...   # see camlib/evaluation/evaluate.py

:func:`init` reads torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` /
``MASTER_PORT``) and starts the process group: ``nccl`` on CUDA (one GPU per local rank), ``gloo`` on
CPU. Without those variables it returns a single-process :class:`Context` and every function here is
a no-op, so the same script runs with plain ``python`` too.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist

__all__ = [
    "Context",
    "active",
    "all_sum",
    "context",
    "gather_list",
    "gather_rows",
    "init",
    "launched_by_torchrun",
    "shard",
    "shard_range",
    "shutdown",
    "sync_evaluators",
]


@dataclass(frozen=True)
class Context:
    """Where this process stands: ``rank`` of ``world_size``, ``local_rank`` on its machine, the
    backend (None when not distributed) and the device it computes on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    """True when torchrun (or another launcher) set ``RANK`` and ``WORLD_SIZE``."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def active() -> bool:
    """True when a process group with more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def init(
    device: str | torch.device | None = None, backend: str | None = None, timeout_s: float = 1800.0
) -> Context:
    """Start the process group from torchrun's environment, or return a one-process context.

    ``device``: ``"cuda"`` -> ``cuda:LOCAL_RANK`` and backend ``nccl``; ``"cpu"`` -> backend ``gloo``;
    None -> CUDA when available. ``backend`` overrides the choice.
    """
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local_rank if launched_by_torchrun() else torch.cuda.current_device())
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
        return Context(device=dev)
    backend = backend or ("nccl" if dev.type == "cuda" else "gloo")
    if not dist.is_initialized():
        kwargs = {"device_id": dev} if dev.type == "cuda" else {}
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s), **kwargs)
    return Context(dist.get_rank(), dist.get_world_size(), local_rank, dist.get_backend(), dev)


def context() -> Context:
    """The current process's :class:`Context` (one process when no group is running)."""
    if not active():
        return Context()
    dev = (
        torch.device("cuda", torch.cuda.current_device())
        if dist.get_backend() == "nccl"
        else torch.device("cpu")
    )
    return Context(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)),
                   dist.get_backend(), dev)  # fmt: skip


def shutdown() -> None:
    """Wait for every process, then end the process group (no-op without one)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def shard_range(n: int, rank: int, world_size: int, block: int = 1) -> range:
    """The contiguous indices of ``range(n)`` that process ``rank`` of ``world_size`` takes.

    The ``ceil(n / block)`` blocks are dealt out contiguously: rank r gets blocks
    ``[r * nb // P, (r + 1) * nb // P)``, so shards are disjoint, cover ``range(n)`` in order and, with
    ``block`` = the batch size, every process sees the very batches a single process would.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside [0, {world_size})")
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    nb = -(-n // block)
    lo, hi = rank * nb // world_size, (rank + 1) * nb // world_size
    return range(min(n, lo * block), min(n, hi * block))


def shard(data, ctx: Context | None = None, block: int = 1):
    """This process's contiguous part of ``data`` (a tensor / array slice or a ``Subset``); see
    :func:`shard_range`. The whole of ``data`` when not distributed."""
    ctx = ctx or context()
    if not ctx.distributed:
        return data
    r = shard_range(len(data), ctx.rank, ctx.world_size, block)
    if isinstance(data, (torch.Tensor, np.ndarray)):
        return data[r.start : r.stop]
    from torch.utils.data import Subset

    return Subset(data, r)


def _gather_objects(obj) -> list:
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def gather_list(items: Sequence, ctx: Context | None = None) -> list:
    """Every process's ``items`` concatenated in rank order (a copy of ``items`` when not distributed)."""
    if not active():
        return list(items)
    return [v for part in _gather_objects(list(items)) for v in part]


def gather_rows(array: np.ndarray | None) -> np.ndarray | None:
    """Rows (e.g. features of a shard) of every process stacked in rank order. An empty shard passes
    None; None when every process does."""
    if not active():
        return array
    parts = [p for p in _gather_objects(array) if p is not None]
    return np.concatenate(parts) if parts else None


def all_sum(value: int | float, ctx: Context | None = None) -> int | float:
    """The sum of ``value`` over all processes."""
    if not active():
        return value
    return type(value)(sum(_gather_objects(value)))


def sync_evaluators(*evaluators, ctx: Context | None = None) -> None:
    """Merge the counts of each evaluator over all processes, in place, on every process.

    Counts are summed with ONE ``all_reduce`` (int64, exact) over all evaluators; per-image lists
    (:class:`camlib.evaluation.wsol.BoxAccSweep` with ``keep_per_image``) are gathered in rank order. ``None``
    entries are skipped, so optional evaluators can be passed as they are.
    """
    evs = [e for e in evaluators if e is not None]
    if not active() or not evs:
        return
    ctx = ctx or context()
    states = [e.state() for e in evs]
    flat = [np.asarray(v, np.int64).ravel() for s in states for v in s["counts"].values()]
    sizes = [a.size for a in flat]
    buf = torch.from_numpy(np.concatenate(flat) if flat else np.zeros(0, np.int64)).to(ctx.device)
    dist.all_reduce(buf, op=dist.ReduceOp.SUM)
    summed = np.split(buf.cpu().numpy(), np.cumsum(sizes)[:-1]) if sizes else []
    has_lists = any(s["lists"] for s in states)
    gathered = _gather_objects([s["lists"] for s in states]) if has_lists else None
    i = 0
    for j, (e, s) in enumerate(zip(evs, states, strict=True)):
        counts = {}
        for k, v in s["counts"].items():
            counts[k] = summed[i].reshape(np.shape(v))
            i += 1
        lists = (
            {k: [x for part in gathered for x in part[j][k]] for k in s["lists"]} if has_lists else s["lists"]
        )
        e.load_state({"config": s["config"], "counts": counts, "lists": lists})
