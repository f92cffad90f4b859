"""The "Backprop" baseline of the paper's Tables 2 and 3: gradient saliency (Simonyan, Vedaldi and
Zisserman, "Deep Inside Convolutional Networks", ICLR workshop 2014).

For an image I and a class c with score S_c (the logit, before the softmax), the saliency map is the
magnitude of the gradient of the score with respect to the input pixels, maximised over the colour
channels:

    M_c(x, y) = max_channel | dS_c / dI(channel, x, y) |

It is one backward pass per class (a class asked twice for an image, e.g. the ground truth among
the top-k, is computed once), needs no special head (any differentiable classifier), and lives at
the INPUT resolution (e.g. 224 x 224), not at the feature grid. The paper boxes these maps with the
same rule as CAMs; :func:`camlib.evaluation.localize.evaluate_protocols` accepts a :class:`BackpropSaliency`
wherever it accepts a :class:`camlib.core.cam.CAM`: the call shape and the result's fields (``logits``,
``classes``, ``maps`` (B, n, H, W), ``scores``, ``probs``) are the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from camlib.core.cam import TargetError, eval_mode, select_classes

__all__ = ["BackpropSaliency", "SaliencyResult"]


@dataclass
class SaliencyResult:
    """Output of one :class:`BackpropSaliency` call; ``maps[b, i]`` is the saliency of ``classes[b, i]``."""

    logits: Tensor  # (B, C)
    classes: Tensor  # (B, n) long
    maps: Tensor  # (B, n, H, W) at the input resolution
    scores: Tensor  # (B, n)
    head: None = None

    @property
    def probs(self) -> Tensor:
        return self.logits.softmax(dim=1)


class BackpropSaliency:
    """Gradient saliency maps with :class:`camlib.core.cam.CAM`'s call shape.

    ``sal(x, targets=...)`` (one class per image, or a (B, n) table), ``sal(x, topk=k)`` (the k best
    classes), or ``sal(x, topk=k, extra_targets=labels)`` (top-k followed by one more class per image,
    e.g. the ground truth, as the localization pipeline needs); none means top-1. The model runs in
    eval mode (every submodule's flag is restored afterwards) and its parameters' ``.grad`` are left
    untouched: only the gradient with respect to the input is computed.
    """

    def __init__(self, model: nn.Module, *, eval_mode: bool = True) -> None:
        self.model = model
        self.eval_mode = eval_mode
        self.head = None  # for code that prints CAM's head

    def __call__(
        self,
        x: Tensor,
        targets: Tensor | Sequence[int] | Sequence[Sequence[int]] | int | None = None,
        *,
        topk: int | None = None,
        extra_targets: Tensor | Sequence[int] | None = None,
        all_classes: bool = False,
    ) -> SaliencyResult:
        if all_classes:
            raise TargetError(
                "BackpropSaliency needs one backward pass per class: all_classes=True would run 1000; "
                "ask for topk= or targets= instead"
            )
        if targets is not None and topk is not None:
            raise TargetError("give only one of targets= or topk=")
        if not isinstance(x, Tensor) or x.ndim != 4:
            raise TargetError(f"expected a (B, 3, H, W) image tensor, got {type(x).__name__}")
        B = x.shape[0]
        inp = x.detach().clone().requires_grad_(True)
        with eval_mode(self.model, self.eval_mode), torch.enable_grad():
            logits = self.model(inp)
            if not isinstance(logits, Tensor) or logits.ndim != 2:
                raise TargetError(f"the model returned {type(logits).__name__}, not (B, C) logits")
            # the same target selection as CAM: targets, else the top-k (top-1) classes
            classes = select_classes(logits.detach(), targets, topk=topk)
            if extra_targets is not None:
                classes = torch.cat([classes, select_classes(logits.detach(), extra_targets)], dim=1)
            n = classes.shape[1]
            maps = torch.empty(B, n, *x.shape[-2:], dtype=torch.float32, device=x.device)
            # the extra class (e.g. the ground truth) is usually one of the top-k already: its map is then
            # copied; the few images without it get their own small forward + backward, unless they
            # are most of the batch (then one more backward of the whole batch is cheaper)
            n_own = n - 1 if extra_targets is not None else n
            same = classes[:, :n_own] == classes[:, n_own:] if extra_targets is not None else None
            miss = None if same is None else ~same.any(1)
            apart = miss is not None and int(miss.sum()) <= B // 2
            for i in range(n):
                if i == n_own and apart:
                    break
                # images of a batch are independent (eval mode): the gradient of the sum is per image
                score = logits.gather(1, classes[:, i : i + 1]).sum()
                last = i == n - 1 or (i == n_own - 1 and apart)
                (g,) = torch.autograd.grad(score, inp, retain_graph=not last)
                maps[:, i] = g.detach().abs().amax(dim=1).float()
            if apart:
                hit = ~miss
                maps[hit, n_own] = maps[hit, same[hit].int().argmax(1)]
                if miss.any():
                    fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else None
                    sub = x.detach()[miss].clone()
                    sub = (sub.contiguous(memory_format=fmt) if fmt is not None else sub).requires_grad_(True)
                    score = self.model(sub).gather(1, classes[miss, n_own:]).sum()
                    (g,) = torch.autograd.grad(score, sub)
                    maps[miss, n_own] = g.detach().abs().amax(dim=1).float()
        logits = logits.detach()
        return SaliencyResult(logits, classes, maps, logits.gather(1, classes))
