"""Training loop with seeding, tqdm progress, checkpoints and exact resume.

Every source of randomness is a pure function of ``(seed, step)``: the sample order of epoch ``e``
comes from a generator seeded with ``(seed, e)``, and before step ``s`` the global torch RNG (dropout,
augmentation) is seeded with ``(seed, s)``. A run interrupted at any step and resumed from its
checkpoint therefore ends with the same weights as an uninterrupted run (tested).

Learning rate: SGD with momentum (or AdamW), step decay ``lr * gamma ** (step // step_every)``, and an
optional larger rate for the head (``head_lr_mult``, the paper fine-tunes new layers at 10x).

The same loop trains every model of camlib: a classifier on ``(image, label)`` pairs by default, and
anything else through ``batch_fn(indices) -> tensors`` and ``step_fn(model, *tensors) -> (loss,
n_correct, n_seen)`` (the VQA answer layer, the multi-label scene pretraining of notebook 07).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset, default_collate
from tqdm.auto import tqdm

__all__ = [
    "TrainConfig",
    "TrainState",
    "classification_step",
    "evaluate_logits",
    "fit",
    "hflip_augment",
    "seed_everything",
]

StepResult = tuple["Tensor | None", float, int]


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (notebooks call this once at the top)."""
    import random

    import numpy as np

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
    step: int = 0
    history: list[dict] = field(default_factory=list)
    finished: bool = False
    resumed_from: int | None = None


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
        opt: torch.optim.Optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
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
) -> TrainState:
    """Train ``model`` on ``dataset`` (default: (image, label) pairs, SGD + cross-entropy).

    ``checkpoint``: file to save to (each epoch end and every ``checkpoint_every`` steps) and to
    resume from when it exists with the same config. ``stop_after``: stop (as an interruption would)
    after this many steps in this call, after saving a checkpoint. ``optimizer``: ``"sgd"`` or
    ``"adam"`` (see :func:`make_optimizer`). ``batch_fn(indices)`` returns the batch's tensors (default:
    collate ``dataset[i]`` pairs); ``augment`` is applied to the first of them; ``step_fn(model,
    *tensors)`` returns ``(loss, n_correct, n_seen)``, with ``loss=None`` to skip a batch (default:
    :func:`classification_step`). Returns the training state with the per-epoch history (loss,
    train_acc = n_correct / n_seen, lr, seconds).
    """
    cfg = config
    n = len(dataset)  # type: ignore[arg-type]
    if n == 0:
        raise ValueError("empty training set")
    get_batch = batch_fn if batch_fn is not None else (lambda idx: _batch(dataset, idx))
    step = step_fn if step_fn is not None else classification_step
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    if cfg.max_iters is not None:
        total = min(total, cfg.max_iters)
    model.to(device)
    groups, opt = make_optimizer(model, cfg, head_prefixes, optimizer)
    state = TrainState()
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if ckpt is not None and ckpt.exists():
        saved = torch.load(ckpt, map_location=device, weights_only=True)
        if saved.get("config") != cfg.to_dict() or saved.get("optimizer_kind", "sgd") != optimizer:
            raise ValueError(
                f"checkpoint {ckpt} was made with a different config {saved.get('config')} "
                f"(optimizer {saved.get('optimizer_kind', 'sgd')!r}); delete it or use another path to start over"
            )
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        state = TrainState(step=saved["step"], history=list(saved["history"]), resumed_from=saved["step"])

    def save() -> None:
        if ckpt is not None:
            _save(
                ckpt,
                {
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "optimizer_kind": optimizer,
                    "step": state.step,
                    "history": state.history,
                    "config": cfg.to_dict(),
                },
            )

    was_training = model.training
    model.train()
    calls = 0
    bar = tqdm(total=total, initial=state.step, desc=desc, disable=not progress, leave=False)
    run_loss = run_correct = run_seen = 0.0
    t0 = time.time()
    try:
        while state.step < total:
            epoch, offset = divmod(state.step, steps_per_epoch)
            order = torch.randperm(n, generator=torch.Generator().manual_seed(_mix(cfg.seed, epoch)))
            idx = order[offset * cfg.batch_size : (offset + 1) * cfg.batch_size]
            torch.manual_seed(_mix(cfg.seed, 10_000_000 + state.step))
            batch = [t.to(device) for t in get_batch(idx)]
            if augment is not None:
                batch[0] = augment(batch[0])
            decay = cfg.lr_gamma ** (state.step // cfg.lr_step_every) if cfg.lr_step_every else 1.0
            for g, pg in zip(groups, opt.param_groups, strict=True):
                pg["lr"] = cfg.lr * g["lr_mult"] * decay
            loss, correct, seen = step(model, *batch)
            if loss is not None:
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                run_loss += float(loss.detach()) * seen
                run_correct += correct
                run_seen += seen
            state.step += 1
            calls += 1
            bar.update(1)
            if run_seen:
                bar.set_postfix(loss=f"{run_loss / run_seen:.3f}", acc=f"{run_correct / run_seen:.3f}", epoch=epoch)
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
            if end_of_epoch or (cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0):
                save()
            if stop_after is not None and calls >= stop_after and state.step < total:
                save()
                return state
    except KeyboardInterrupt:
        save()
        raise
    finally:
        bar.close()
        model.train(was_training)
    state.finished = True
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
