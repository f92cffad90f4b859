"""Visual question answering with class activation maps (Zhou et al., CVPR 2016, section 4.2, Fig. 12).

The paper plugs the GAP features of its CAM network into the "simple baseline for VQA" (a
bag-of-words question vector concatenated with the image feature, one linear softmax layer over the
answers) and shows the CAM of the predicted answer. :class:`BowGAPVQA` is that model:

    f_k(x, y)     image features of the backbone (k = 1..K, h x w grid)
    q             bag-of-words vector of the question (length V)
    s_a = sum_k w_k^a (1/hw) sum_{x,y} f_k(x, y)  +  sum_j u_j^a q_j  +  b_a
          `----------- image part -------------'    `- question -'
    M_a(x, y) = sum_k w_k^a f_k(x, y)                       (the CAM of answer a)
    s_a = (1/hw) sum_{x,y} M_a(x, y) + o_a(q) + b_a          (o_a(q) = u^a . q, the question offset)

``w^a`` are answer ``a``'s weights on the image part of the concatenation and ``u^a`` those on the
question part. The question cannot change WHERE the map looks, only how much the answer is favoured
overall (the offset): a limit of the additive baseline. ``question_gate=True`` is an optional
variant, not the paper's: a per-channel gate ``g(q) = sigmoid(G q + c)`` multiplies the features
before pooling, so ``f_k`` becomes ``g_k(q) f_k`` everywhere above; the identity still holds exactly,
and the question now selects which channels (hence which objects) the CAM of an answer is made of.

The pieces of the study live in four modules, one subject each:

- this module: the model and its CAMs (:class:`BowGAPVQA`, :class:`VQACAMResult`) and the image
  backbones that feed it (:func:`small_backbone`, :class:`GAPBackbone`, :func:`gap_backbone`,
  :func:`torchvision_gap_backbone`, :func:`attach_head`);
- :mod:`camlib.datasets.vqa` (data): the VQA v1/v2 folder reader, :class:`Vocabulary`, the official
  answer normalisation;
- :mod:`camlib.paper.vqa_train`: pooled features (cached on the backbone's weights), the answer
  layer's training and prediction;
- :mod:`camlib.paper.vqa_eval`: the official VQA accuracy, CAM pointing, the Figure-12 plot.

Each name is imported from the module that defines it (no re-exports: the three modules form no circle).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from camlib.core.cam import CAM, NotCAMCompatibleError, capture, eval_mode, maps_from_features

__all__ = [
    # the model (defined here)
    "BowGAPVQA",
    "GAPBackbone",
    "VQACAMResult",
    "attach_head",
    "gap_backbone",
    "small_backbone",
    "torchvision_gap_backbone",
]


# ============================================================================ the model


def small_backbone(channels: tuple[int, ...] = (24, 48, 96), width: int = 128) -> tuple[nn.Module, int]:
    """The conv part of :class:`camlib.models.SmallGAPNet` (conv blocks -> 3x3 conv + ReLU), its width.

    64 x 64 input -> ``width`` x 16 x 16 features.
    """
    from camlib.models import SmallGAPNet

    net = SmallGAPNet(1, channels=channels, width=width)
    return nn.Sequential(net.features, net.cam_conv), width


@dataclass
class VQACAMResult:
    """The answer CAMs of one batch. ``maps[b, i]`` is the raw map of answer ``answers[b, i]``.

    ``logits[b, a] == maps[b, i].mean() + question_offsets[b, i] + bias[b, i]`` for ``a = answers[b, i]``
    (:meth:`identity_error` measures it).
    """

    logits: Tensor  # (B, A)
    answers: Tensor  # (B, n) long
    maps: Tensor  # (B, n, h, w)
    question_offsets: Tensor  # (B, n): u^a . q
    bias: Tensor  # (B, n)
    features: Tensor  # (B, K, h, w), after the question gate when there is one
    gates: Tensor | None  # (B, K) or None

    @property
    def image_scores(self) -> Tensor:
        """(B, n) the image part of each logit: the mean of the answer's map."""
        return self.maps.mean((2, 3))

    def identity_error(self) -> float:
        """max |logit - (mean of map + question offset + bias)| over the batch."""
        rebuilt = self.image_scores + self.question_offsets + self.bias
        return float((self.logits.gather(1, self.answers) - rebuilt).abs().max())


class BowGAPVQA(nn.Module):
    """The bag-of-words + GAP-image-feature VQA baseline with one linear answer layer (CAM-able).

    ``backbone(x)`` must return (B, K, h, w) features (K = ``feature_dim``). ``forward(x, q)`` takes the
    images and (B, V) bag-of-words vectors and returns (B, A) answer logits:
    ``fc(concat(GAP(features), q))``. ``fc.weight[:, :K]`` is the image part, ``fc.weight[:, K:]`` the
    question part. ``question_gate=True``: see the module docstring (not the paper's model).
    """

    def __init__(
        self,
        backbone: nn.Module,
        feature_dim: int,
        vocab_size: int,
        num_answers: int,
        *,
        question_gate: bool = False,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.feature_dim, self.vocab_size, self.num_answers = (
            int(feature_dim),
            int(vocab_size),
            int(num_answers),
        )
        self.gate: nn.Linear | None = None
        if question_gate:
            self.gate = nn.Linear(vocab_size, feature_dim)
            nn.init.zeros_(self.gate.weight)
            nn.init.constant_(self.gate.bias, 2.0)  # starts almost open (sigmoid(2) = 0.88)
        self.fc = nn.Linear(feature_dim + vocab_size, num_answers)

    def gates(self, q: Tensor) -> Tensor | None:
        return None if self.gate is None else torch.sigmoid(self.gate(q))

    def features(self, x: Tensor, q: Tensor) -> tuple[Tensor, Tensor | None]:
        """(B, K, h, w) features as the answer layer sees them (gated), and the gates (or None)."""
        f = self.backbone(x)
        if f.ndim != 4 or f.shape[1] != self.feature_dim:
            raise ValueError(f"backbone returned {tuple(f.shape)}, expected (B, {self.feature_dim}, h, w)")
        g = self.gates(q)
        if g is not None:
            f = f * g[:, :, None, None]
        return f, g

    def forward(self, x: Tensor, q: Tensor) -> Tensor:
        f, _ = self.features(x, q)
        return self.fc(torch.cat([f.mean((2, 3)), q.to(f.dtype)], dim=1))

    def cam(
        self,
        x: Tensor,
        q: Tensor,
        answers: Tensor | Sequence[int] | Sequence[Sequence[int]] | None = None,
        *,
        topk: int | None = None,
        all_answers: bool = False,
    ) -> VQACAMResult:
        """Answer CAMs in one forward pass (eval mode, no grad; train/eval flags restored).

        ``answers``: one answer per image (B,) or a (B, n) table; else the ``topk`` best answers
        (default top-1), or every answer with ``all_answers=True``.
        """
        with eval_mode(self), torch.no_grad():
            f, g = self.features(x, q)
            K = self.feature_dim
            w, b = self.fc.weight, self.fc.bias
            qf = q.to(f.dtype)
            logits = F.linear(torch.cat([f.mean((2, 3)), qf], dim=1), w, b)
            B, A = logits.shape
            if all_answers:
                classes = torch.arange(A, device=x.device).expand(B, A)
            elif answers is not None:
                classes = torch.as_tensor(answers, dtype=torch.long, device=x.device)
                classes = classes[:, None] if classes.ndim == 1 else classes
                if classes.shape[0] != B or classes.ndim != 2:
                    raise ValueError(f"answers must be (B,) or (B, n) with B={B}, got {tuple(classes.shape)}")
                if classes.numel() and (classes.min() < 0 or classes.max() >= A):
                    raise ValueError(f"answer index out of range [0, {A})")
            else:
                classes = logits.topk(1 if topk is None else int(topk), dim=1).indices
            maps = maps_from_features(f, w[:, :K], classes=classes)  # M_a = sum_k w_k^a f_k (no bias)
            offsets = torch.einsum("bv,bnv->bn", qf, w[classes, K:])
            return VQACAMResult(logits, classes, maps, offsets, b[classes], f, g)


def attach_head(backbone: nn.Module, head: BowGAPVQA) -> BowGAPVQA:
    """The full image model: ``backbone`` under the answer layer (and gate) of a ``head`` trained on
    pooled features (``BowGAPVQA(nn.Identity(), ...)``). The layers are shared, not copied."""
    full = BowGAPVQA(
        backbone, head.feature_dim, head.vocab_size, head.num_answers, question_gate=head.gate is not None
    )
    full.fc = head.fc
    full.gate = head.gate
    return full


# ============================================================================ backbones of torchvision classifiers


class GAPBackbone(nn.Module):
    """The feature maps that a CAM-compatible classifier global-average-pools (the layer CAM uses).

    Runs the whole classifier and returns the hooked feature layer's output (ReLU'd when the head
    applies one in its forward code), so any model :class:`camlib.core.cam.CAM` accepts with an average
    pooling head works.
    """

    def __init__(self, model: nn.Module, feature_layer: str, relu: bool = False) -> None:
        super().__init__()
        self.model, self.feature_layer, self.relu = model, feature_layer, relu
        model.get_submodule(feature_layer)  # fails now, not at the first forward, on a wrong name

    def forward(self, x: Tensor) -> Tensor:
        with capture(self.model, self.feature_layer) as out:
            self.model(x)
        f = out[self.feature_layer]
        return f.relu() if self.relu else f


def gap_backbone(model: nn.Module, input_size: tuple[int, int] = (224, 224)) -> tuple[GAPBackbone, int]:
    """Wrap a classifier as a :class:`GAPBackbone`, finding its feature layer with :class:`CAM`."""
    p = next(model.parameters())
    cam = CAM(model)
    out = cam(torch.zeros(1, 3, *input_size, device=p.device, dtype=p.dtype))
    head = cam.head
    assert head is not None
    if head.kind != "linear" or head.pool != "avg":
        raise NotCAMCompatibleError(f"need a global AVERAGE pooling + linear head, found {head}")
    return GAPBackbone(model, head.feature_layer, head.relu), int(out.features.shape[1])


def torchvision_gap_backbone(
    name: str = "googlenet", weights: str = "DEFAULT", device: str | torch.device = "cpu"
):
    """A pretrained torchvision GAP classifier (via :func:`camlib.models.load_torchvision`) as a frozen
    feature extractor. Returns ``(backbone, feature_dim, preprocess, description)``."""
    from camlib.models import load_torchvision

    m = load_torchvision(name, weights=weights, device=device)
    for p in m.model.parameters():
        p.requires_grad_(False)
    backbone, k = gap_backbone(m.model, m.input_size)
    return backbone.eval(), k, m.preprocess, m.description
