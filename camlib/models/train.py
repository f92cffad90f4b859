"""Training loop with seeding, tqdm progress, checkpoints, exact resume, worker loading, AMP and DDP.

Every source of randomness is a pure function of ``(seed, step)`` or ``(seed, epoch, sample)``:

* sample order: epoch ``e`` visits ``randperm(n)`` drawn from a generator seeded with ``(seed, e)``;
  step ``s`` takes the global batch ``order[o * B : (o + 1) * B]`` with ``e, o = divmod(s, ceil(n / B))``
  (:class:`StepSampler`, one permutation per epoch, not one per step);
* per-sample augmentation (the dataset's own transform, e.g. a random crop of an ``ImageFolder``):
  item ``i`` of epoch ``e`` is loaded with the torch / python / numpy RNGs seeded with
  ``(seed, e, i)`` (and restored afterwards), in whichever process loads it, so DataLoader workers,
  their number and the number of DDP processes do not change a single pixel;
* batch augmentation (``augment``) and dropout: before step ``s`` the global torch RNG is seeded with
  ``(seed, s)`` (and the rank, when ``r > 0``).

A run interrupted at any step and resumed from its checkpoint therefore ends with the same weights as an
uninterrupted run (tested). Checkpoints are written only at step boundaries: Ctrl-C (SIGINT) or SIGTERM
during a step lets the step finish, saves, then raises ``KeyboardInterrupt`` (``SystemExit(143)`` for
SIGTERM); a second Ctrl-C raises at once and leaves the last checkpoint (written atomically) as it was.

Learning rate: SGD with momentum (or AdamW), step decay ``lr * gamma ** (step // step_every)``, and an
optional larger rate for the head (``head_lr_mult``, the paper fine-tunes new layers at 10x).

Loading: for datasets that read files (``ImageFolder`` / ``DatasetFolder``, or any dataset with
``reads_files = True``) the batches come from a ``DataLoader`` with worker processes (default
``min(8, cpus per local process)``) and, on CUDA, pinned memory with non-blocking copies; in-memory
datasets (tensors, :class:`camlib.datasets.ProceduralShapes`) are read in the main process, as before.

Speed options: ``amp="bf16" | "fp16"`` (``torch.autocast`` on CUDA, with a ``GradScaler`` for fp16;
a no-op on CPU) and ``channels_last=True`` (model and images in NHWC).

Data parallel over processes (``torchrun --nproc_per_node=P``, after
:func:`camlib.core.distributed.init`; gloo on CPU, nccl on CUDA): rank ``r`` takes the ``r``-th of ``P``
contiguous parts of each global batch of ``B`` (``torch.tensor_split``, so ``n_r`` differ by at most 1
and the last short batch works), scales its mean loss by ``n_r / N`` (``N`` = the global batch's size)
and the gradients are summed over processes (bucketed ``all_reduce`` after backward), which is exactly
the gradient of the mean loss over the global batch: ``P`` processes compute what one process would
with batch ``B`` (to float rounding; the 2-process CPU test checks it). BatchNorm statistics are those of
each process's part (as with ``DistributedDataParallel``; ``sync_bn=True`` on CUDA gives the
global-batch statistics: :func:`convert_sync_bn`). Rank 0 writes the checkpoints; every rank resumes from the same file, with
any number of processes. Batch augmentation and dropout draw per rank, so 1-vs-P equality holds for
per-sample augmentation (the ImageNet recipe) and models without dropout.

The same loop trains every model of camlib: a classifier on ``(image, label)`` pairs by default, and
anything else through ``batch_fn(indices) -> tensors`` and ``step_fn(model, *tensors) -> (loss,
n_correct, n_seen)`` (the VQA answer layer, the multi-label scene pretraining of notebook 07).
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Sampler, Subset, default_collate
from tqdm.auto import tqdm

from camlib.core.io import load_checkpoint

__all__ = [
    "SeededItems",
    "StepSampler",
    "TrainConfig",
    "TrainState",
    "classification_step",
    "convert_sync_bn",
    "default_workers",
    "evaluate_logits",
    "fit",
    "hflip_augment",
    "reads_files",
    "sample_seed",
    "seed_everything",
]

StepResult = tuple["Tensor | None", float, int]


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (notebooks call this once at the top)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _mix(seed: int, n: int) -> int:
    return (seed * 1_000_003 + n * 7_919 + 12_345) % (2**63 - 1)


def hflip_augment(x: Tensor) -> Tensor:
    """Mirror each image of the batch with probability 1/2 (uses the step-seeded torch RNG)."""
    flip = torch.rand(x.shape[0], device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


@dataclass
class TrainConfig:
    """Hyper-parameters; saved in every checkpoint and recorded with results."""

    epochs: int = 4
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_gamma: float = 0.1
    lr_step_every: int | None = None  # iterations between decays; None = no decay
    head_lr_mult: float = 1.0
    max_iters: int | None = None  # iteration budget (stops early when reached)
    checkpoint_every: int = 0  # iterations between checkpoints; 0 = at each epoch end only
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainState:
    """Where a run stands. ``samples`` / ``seconds``: images and wall time of THIS call (all processes
    together), so ``samples / seconds`` is its throughput; ``world_size``: processes it ran on."""

    step: int = 0
    history: list[dict] = field(default_factory=list)
    finished: bool = False
    resumed_from: int | None = None
    samples: int = 0
    seconds: float = 0.0
    world_size: int = 1


def _param_groups(model: nn.Module, cfg: TrainConfig, head: Sequence[str]) -> list[dict]:
    if cfg.head_lr_mult == 1.0 or not head:
        return [{"params": [p for p in model.parameters() if p.requires_grad], "lr_mult": 1.0}]
    head_params, body_params = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (head_params if any(name.startswith(h) for h in head) else body_params).append(p)
    if not head_params:
        raise ValueError(f"head_prefixes {list(head)} match no parameter of the model")
    return [{"params": body_params, "lr_mult": 1.0}, {"params": head_params, "lr_mult": cfg.head_lr_mult}]


def make_optimizer(
    model: nn.Module, cfg: TrainConfig, head_prefixes: Sequence[str] = (), optimizer: str = "sgd"
) -> tuple[list[dict], torch.optim.Optimizer]:
    """Parameter groups (with their ``lr_mult``) and the optimizer over the trainable parameters.

    ``"sgd"``: momentum ``cfg.momentum`` and L2 ``cfg.weight_decay``; ``"adam"``: AdamW with decoupled
    ``cfg.weight_decay``.
    """
    groups = _param_groups(model, cfg, head_prefixes)
    params = [{"params": g["params"], "lr": cfg.lr * g["lr_mult"]} for g in groups]
    if optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    elif optimizer == "adam":
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        raise ValueError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
    return groups, opt


_CE = nn.CrossEntropyLoss()


def classification_step(model: nn.Module, x: Tensor, y: Tensor) -> StepResult:
    """The default step: cross-entropy of ``model(x)`` against labels ``y``; counts top-1 hits."""
    logits = model(x)
    return _CE(logits, y), float((logits.argmax(1) == y).sum()), len(y)


def _save(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _batch(dataset: Dataset, idx: Tensor) -> tuple[Tensor, Tensor]:
    x, y = default_collate([dataset[int(i)] for i in idx])
    return x, torch.as_tensor(y)


# --------------------------------------------------------------------------- sampling and loading


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The RNG seed item ``index`` of epoch ``epoch`` is loaded (and augmented) with."""
    return _mix(_mix(seed, 1_000_000_000 + epoch), index)


class StepSampler(Sampler[list[tuple[int, int]]]):
    """The batches of steps ``[start, stop)``, this process's part of each: a batch sampler for ``DataLoader``.

    Step ``s`` is batch ``o`` of epoch ``e`` (``e, o = divmod(s, ceil(n / B))``): the global batch
    ``order_e[o * B : (o + 1) * B]`` with ``order_e = randperm(n)`` from a generator seeded with
    ``(seed, e)`` (computed once per epoch). With ``world_size`` P, process ``rank`` takes the
    ``rank``-th of the P contiguous parts ``torch.tensor_split`` makes (possibly empty for a last batch
    shorter than P). Each item is ``(index, sample_seed(seed, e, index))`` for :class:`SeededItems`.
    """

    def __init__(self, n: int, batch_size: int, seed: int, start: int, stop: int, rank: int = 0,
                 world_size: int = 1) -> None:  # fmt: skip
        if n <= 0 or batch_size <= 0:
            raise ValueError(f"n and batch_size must be positive, got {n}, {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside [0, {world_size})")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start, self.stop, self.rank, self.world_size = start, stop, rank, world_size
        self.steps_per_epoch = math.ceil(n / batch_size)
        self._orders: dict[int, Tensor] = {}

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def order(self, epoch: int) -> Tensor:
        """The sample order of ``epoch`` (the last two epochs cached: the loader prefetches ahead)."""
        if epoch not in self._orders:
            if len(self._orders) >= 2:
                del self._orders[min(self._orders)]
            self._orders[epoch] = torch.randperm(
                self.n, generator=torch.Generator().manual_seed(_mix(self.seed, epoch))
            )
        return self._orders[epoch]

    def global_size(self, step: int) -> int:
        """``N``: the number of samples in the global batch of ``step`` (B, or fewer at an epoch end)."""
        offset = step % self.steps_per_epoch
        return min(self.batch_size, self.n - offset * self.batch_size)

    def indices(self, step: int) -> Tensor:
        """This process's part of the global batch of ``step``."""
        epoch, offset = divmod(step, self.steps_per_epoch)
        idx = self.order(epoch)[offset * self.batch_size : (offset + 1) * self.batch_size]
        return torch.tensor_split(idx, self.world_size)[self.rank] if self.world_size > 1 else idx

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start, self.stop):
            epoch = step // self.steps_per_epoch
            yield [(i, sample_seed(self.seed, epoch, i)) for i in self.indices(step).tolist()]


def _seed_rngs(seed: int) -> None:
    # the CPU generator only: torch.manual_seed would also seed every CUDA device, ~100x slower per item
    torch.default_generator.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


@contextlib.contextmanager
def _kept_rngs() -> Iterator[None]:
    """Restore the torch / python / numpy global RNGs after the body (the main process's own streams)."""
    t, r, n = torch.get_rng_state(), random.getstate(), np.random.get_state()
    try:
        yield
    finally:
        torch.set_rng_state(t)
        random.setstate(r)
        np.random.set_state(n)


class SeededItems(Dataset):
    """``items[(i, s)] = dataset[i]`` loaded with every global RNG seeded with ``s``: the per-sample
    seeded augmentation that makes workers and resumes reproducible. In the main process the RNGs are
    restored afterwards (once per batch, through ``__getitems__``); a worker's own streams need no care."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def _load(self, key: tuple[int, int]):
        i, s = key
        _seed_rngs(s)
        return self.dataset[i]

    def __getitem__(self, key: tuple[int, int]):
        return self.__getitems__([key])[0]

    def __getitems__(self, keys: list[tuple[int, int]]) -> list:
        from torch.utils.data import get_worker_info

        if get_worker_info() is not None:
            return [self._load(k) for k in keys]
        with _kept_rngs():
            return [self._load(k) for k in keys]


def _collate_pairs(items: list) -> tuple[Tensor, Tensor] | None:
    if not items:
        return None  # an empty part of a short last batch (more processes than samples)
    x, y = default_collate(items)
    return x, torch.as_tensor(y)


def _worker_init(_: int) -> None:
    # Ctrl-C goes to the whole process group: the main process finishes its step, saves and stops the
    # workers; a worker must not die first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def reads_files(dataset: Dataset) -> bool:
    """True for a dataset that decodes files per item (``DatasetFolder`` / ``ImageFolder``, or a
    ``reads_files = True`` attribute), looking through ``Subset``: those get DataLoader workers by default."""
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    if getattr(dataset, "reads_files", False):
        return True
    try:
        from torchvision.datasets import DatasetFolder
    except ImportError:  # pragma: no cover
        return False
    return isinstance(dataset, DatasetFolder)


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def default_workers(dataset: Dataset) -> int:
    """Worker processes ``fit`` uses by default: ``min(8, cpus // processes on this machine)`` for a
    dataset that reads files, 0 (the main process) for an in-memory one."""
    if not reads_files(dataset):
        return 0
    local = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    return max(1, min(8, _cpus() // max(1, local)))


def convert_sync_bn(model: nn.Module) -> nn.Module:
    """``model`` with every BatchNorm as ``SyncBatchNorm`` (CUDA + nccl only): batch statistics over
    the global batch, so P processes normalise exactly as one process would."""
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


# --------------------------------------------------------------------------- interrupts


class _StopRequest:
    """SIGINT / SIGTERM during ``fit``: note it, let the step finish; a repeated signal raises at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, object] = {}

    def _handler(self, signum: int, frame) -> None:
        if self.signum == signum:  # the user insists: stop now, the last checkpoint stays as it is
            self.restore()
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            raise SystemExit(128 + signum)
        self.signum = signum

    def install(self) -> _StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def restore(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)  # type: ignore[arg-type]
        self._old.clear()

    def exception(self) -> BaseException:
        if self.signum == signal.SIGTERM:
            return SystemExit(128 + signal.SIGTERM)
        return KeyboardInterrupt()


# --------------------------------------------------------------------------- data parallel


def _allreduce_grads(params: list[nn.Parameter], bucket_bytes: int = 64 << 20) -> None:
    """Sum the gradients of ``params`` over processes (bucketed flat all_reduce). A parameter without a
    gradient on some process counts as zero there; one without a gradient anywhere keeps ``None``."""
    if not params:
        return
    has = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=params[0].device)
    dist.all_reduce(has)
    live = [p for p, h in zip(params, has.tolist(), strict=True) if h > 0]
    for p in live:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    buckets: list[list[nn.Parameter]] = []
    size = 0
    for p in live:
        nbytes = p.numel() * p.element_size()
        if not buckets or size + nbytes > bucket_bytes or buckets[-1][0].grad.dtype != p.grad.dtype:  # type: ignore[union-attr]
            buckets.append([])
            size = 0
        buckets[-1].append(p)
        size += nbytes
    for bucket in buckets:
        grads = [p.grad for p in bucket]
        flat = torch.cat([g.reshape(-1) for g in grads])  # type: ignore[union-attr]
        dist.all_reduce(flat)
        for g, v in zip(grads, flat.split([g.numel() for g in grads]), strict=True):  # type: ignore[union-attr]
            g.copy_(v.view_as(g))  # type: ignore[union-attr]


def _broadcast_state(model: nn.Module) -> None:
    """Every process takes rank 0's parameters and buffers (start, and BatchNorm statistics at the end)."""
    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            dist.broadcast(t.data, 0)


def _amp_dtype(amp: str | None, device: torch.device) -> torch.dtype | None:
    if amp in (None, "", "none", "off"):
        return None
    if amp not in ("bf16", "fp16"):
        raise ValueError(f"amp must be None, 'bf16' or 'fp16', got {amp!r}")
    if device.type != "cuda":
        return None  # autocast is a CUDA speed option; on CPU the run is float32 as before
    return torch.bfloat16 if amp == "bf16" else torch.float16


def _to_device(t, device: torch.device, non_blocking: bool, channels_last: bool):
    if not isinstance(t, Tensor):
        return t
    if channels_last and t.dim() == 4 and t.is_floating_point():
        return t.to(device, non_blocking=non_blocking, memory_format=torch.channels_last)
    return t.to(device, non_blocking=non_blocking)


# --------------------------------------------------------------------------- the loop


def fit(
    model: nn.Module,
    dataset: Dataset,
    config: TrainConfig,
    *,
    checkpoint: str | Path | None = None,
    device: str | torch.device = "cpu",
    augment: Callable[[Tensor], Tensor] | None = hflip_augment,
    head_prefixes: Sequence[str] = (),
    stop_after: int | None = None,
    progress: bool = True,
    optimizer: str = "sgd",
    batch_fn: Callable[[Tensor], Sequence[Tensor]] | None = None,
    step_fn: Callable[..., StepResult] | None = None,
    desc: str = "train",
    num_workers: int | None = None,
    pin_memory: bool | None = None,
    prefetch_factor: int = 4,
    amp: str | None = None,
    channels_last: bool = False,
    distributed: bool | None = None,
) -> TrainState:
    """Train ``model`` on ``dataset`` (default: (image, label) pairs, SGD + cross-entropy).

    ``checkpoint``: file to save to (each epoch end and every ``checkpoint_every`` steps) and to
    resume from when it exists with the same config. ``stop_after``: stop (as an interruption would)
    after this many steps in this call, after saving a checkpoint. ``optimizer``: ``"sgd"`` or
    ``"adam"`` (see :func:`make_optimizer`). ``batch_fn(indices)`` returns the batch's tensors (default:
    collate ``dataset[i]`` pairs); ``augment`` is applied to the first of them; ``step_fn(model,
    *tensors)`` returns ``(loss, n_correct, n_seen)``, with ``loss=None`` to skip a batch (default:
    :func:`classification_step`); ``loss`` must be a mean over the batch's samples (for DDP's scaling).
    Returns the training state with the per-epoch history (loss, train_acc = n_correct / n_seen, lr,
    seconds).

    Speed (none of them changes which samples, crops or seeds a step sees): ``num_workers`` DataLoader
    processes (default :func:`default_workers`: on for datasets that read files, 0 for in-memory ones;
    ignored with ``batch_fn``), ``pin_memory`` (default: on with workers on CUDA), ``prefetch_factor``
    batches per worker, ``amp`` (``"bf16"`` / ``"fp16"`` autocast on CUDA, no-op on CPU),
    ``channels_last``. ``distributed``: data parallel over the running ``torch.distributed`` group
    (default: when one with more than one process is running, see :mod:`camlib.core.distributed`);
    ``config.batch_size`` is then the GLOBAL batch, split over the processes.
    """
    cfg = config
    n = len(dataset)  # type: ignore[arg-type]
    if n == 0:
        raise ValueError("empty training set")
    dev = torch.device(device)
    ddp = (
        (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1)
        if distributed is None
        else distributed
    )
    if ddp and not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError("fit(distributed=True) needs a torch.distributed process group: launch with torchrun "
                           "and call camlib.core.distributed.init() first")  # fmt: skip
    rank, world = (dist.get_rank(), dist.get_world_size()) if ddp else (0, 1)
    is_main = rank == 0
    step = step_fn if step_fn is not None else classification_step
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    if cfg.max_iters is not None:
        total = min(total, cfg.max_iters)
    model.to(dev)
    if channels_last:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    groups, opt = make_optimizer(model, cfg, head_prefixes, optimizer)
    amp_dtype = _amp_dtype(amp, dev)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    state = TrainState(world_size=world)
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if ckpt is not None and ckpt.exists():
        saved = load_checkpoint(ckpt, map_location=dev, fix="Delete it to start the training over.")
        if saved.get("config") != cfg.to_dict() or saved.get("optimizer_kind", "sgd") != optimizer:
            raise ValueError(
                f"checkpoint {ckpt} was made with a different config {saved.get('config')} "
                f"(optimizer {saved.get('optimizer_kind', 'sgd')!r}); delete it or use another path to start over"
            )
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        if scaler is not None and saved.get("scaler"):
            scaler.load_state_dict(saved["scaler"])
        state = TrainState(step=saved["step"], history=list(saved["history"]), resumed_from=saved["step"],
                           world_size=world)  # fmt: skip
    params = [p for p in model.parameters() if p.requires_grad]
    if ddp:
        _broadcast_state(model)  # the same start everywhere, whatever each process initialised

    def save() -> None:
        if ckpt is not None and is_main:
            _save(
                ckpt,
                {
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "optimizer_kind": optimizer,
                    "scaler": scaler.state_dict() if scaler is not None else None,
                    "step": state.step,
                    "history": state.history,
                    "config": cfg.to_dict(),
                },
            )
        if ddp:
            dist.barrier()  # the file is complete before any process goes on (or exits)

    sampler = StepSampler(n, cfg.batch_size, cfg.seed, state.step, total, rank, world)
    loader: Iterator | None = None
    workers = 0
    if batch_fn is None:
        workers = default_workers(dataset) if num_workers is None else int(num_workers)
        pin = (
            (workers > 0 and dev.type == "cuda")
            if pin_memory is None
            else bool(pin_memory and dev.type == "cuda")
        )
        dl_kw: dict = {"num_workers": workers, "pin_memory": pin, "collate_fn": _collate_pairs,
                       "generator": torch.Generator().manual_seed(0)}  # fmt: skip
        if workers > 0:
            dl_kw.update(prefetch_factor=prefetch_factor, worker_init_fn=_worker_init)
        loader = iter(DataLoader(SeededItems(dataset), batch_sampler=sampler, **dl_kw))
        non_blocking = pin
    else:
        non_blocking = False

    was_training = model.training
    model.train()
    calls = 0
    bar = tqdm(total=total, initial=state.step, desc=desc, disable=not (progress and is_main), leave=False)
    run_loss = run_correct = run_seen = 0.0
    t0 = time.time()
    stop = _StopRequest().install()
    try:
        while state.step < total:
            epoch = state.step // steps_per_epoch
            step_seed = _mix(cfg.seed, 10_000_000 + state.step)
            if rank:
                step_seed = _mix(step_seed, rank)
            if loader is not None:
                raw = next(loader)
                torch.manual_seed(step_seed)
            else:
                torch.manual_seed(step_seed)
                raw = batch_fn(sampler.indices(state.step))  # type: ignore[misc]
            n_local = len(sampler.indices(state.step)) if ddp else 0
            batch = None if raw is None else [_to_device(t, dev, non_blocking, channels_last) for t in raw]
            if batch is not None and augment is not None:
                batch[0] = augment(batch[0])
            decay = cfg.lr_gamma ** (state.step // cfg.lr_step_every) if cfg.lr_step_every else 1.0
            for g, pg in zip(groups, opt.param_groups, strict=True):
                pg["lr"] = cfg.lr * g["lr_mult"] * decay
            opt.zero_grad(set_to_none=True)
            loss, correct, seen = None, 0.0, 0
            if batch is not None and (not ddp or n_local > 0):
                with torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    loss, correct, seen = step(model, *batch)
            stats = [float(loss.detach()) * seen if loss is not None else 0.0, float(correct), float(seen)]
            if loss is not None:
                scaled = loss * (n_local / sampler.global_size(state.step)) if ddp else loss
                (scaler.scale(scaled) if scaler is not None else scaled).backward()
            stepped = loss is not None
            stopping = stop.signum is not None
            if ddp:
                flags = torch.tensor([*stats, float(loss is not None), float(stopping)], dtype=torch.float64,
                                     device=dev if dev.type == "cuda" else "cpu")  # fmt: skip
                dist.all_reduce(flags)
                *stats, n_stepped, n_stopping = flags.tolist()
                stepped, stopping = n_stepped > 0, n_stopping > 0
                if stepped:
                    _allreduce_grads(params)
            if stepped:
                if scaler is not None:
                    scaler.step(opt)
                    scaler.update()
                else:
                    opt.step()
                run_loss += stats[0]
                run_correct += stats[1]
                run_seen += stats[2]
                state.samples += int(stats[2]) if step_fn is None else sampler.global_size(state.step)
            stopping = stopping or (not ddp and stop.signum is not None)  # a signal during the update
            state.step += 1
            calls += 1
            bar.update(1)
            if run_seen:
                bar.set_postfix(
                    loss=f"{run_loss / run_seen:.3f}", acc=f"{run_correct / run_seen:.3f}", epoch=epoch
                )
            end_of_epoch = state.step % steps_per_epoch == 0 or state.step == total
            if end_of_epoch:
                state.history.append(
                    {
                        "epoch": epoch,
                        "step": state.step,
                        "loss": run_loss / max(run_seen, 1),
                        "train_acc": run_correct / max(run_seen, 1),
                        "lr": cfg.lr * decay,
                        "seconds": time.time() - t0,
                    }
                )
                run_loss = run_correct = run_seen = 0.0
            interrupted = stop_after is not None and calls >= stop_after and state.step < total
            if (
                end_of_epoch
                or stopping
                or interrupted
                or (cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0)
            ):
                save()  # only here, between steps: never a half-updated model
            if stopping:
                raise stop.exception()
            if interrupted:
                break
        state.finished = state.step >= total
        if ddp:
            _broadcast_state(model)  # BatchNorm statistics: rank 0's (the checkpoint's) everywhere
    finally:
        stop.restore()
        if loader is not None and hasattr(loader, "_shutdown_workers"):
            loader._shutdown_workers()  # no worker outlives the call (a kept traceback would hold them)
        bar.close()
        model.train(was_training)
        state.seconds = time.time() - t0
    return state


@torch.inference_mode()
def evaluate_logits(
    model: nn.Module, dataset: Dataset, batch_size: int = 256, device: str | torch.device = "cpu"
) -> tuple[Tensor, Tensor]:
    """Logits and labels of a whole (image, label) dataset, in order, with the model in eval mode."""
    was_training = model.training
    model.eval()
    try:
        outs, labels = [], []
        n = len(dataset)  # type: ignore[arg-type]
        for start in range(0, n, batch_size):
            x, y = _batch(dataset, torch.arange(start, min(n, start + batch_size)))
            outs.append(model(x.to(device)).float().cpu())
            labels.append(y)
        return torch.cat(outs), torch.cat(labels)
    finally:
        model.train(was_training)
