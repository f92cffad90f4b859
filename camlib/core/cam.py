"""Class Activation Mapping (Zhou et al., CVPR 2016, section 2).

For a network whose last convolutional features ``f_k(x, y)`` (k = 1..K, on an h x w grid) are
globally average-pooled and fed to one linear layer with weights ``w_k^c`` and bias ``b_c``:

    S_c = sum_k w_k^c * (1/hw) sum_{x,y} f_k(x, y) + b_c
    M_c(x, y) = sum_k w_k^c f_k(x, y)                       (the class activation map)
    S_c = (1/hw) sum_{x,y} M_c(x, y) + b_c                  (the identity camlib tests)

The paper writes ``S_c = sum_{x,y} M_c(x, y)``: the same up to the pooling's 1/hw and the bias.

:class:`CAM` finds the feature layer and the linear layer of a classifier by itself (or takes their
names), checks numerically that the head really is ``global pooling -> linear`` and computes, in one
forward pass, the logits, the features and the maps of all classes at once (a single einsum over
(B, K, h, w) x (C, K)) or of chosen classes (top-k, or one target per image).

Post-processing (upsampling, ReLU, normalisation) is separate and explicit: see :class:`CAMOptions`
and :func:`postprocess`. Only the maps asked for are upsampled.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "CAM",
    "DISPLAY_OPTIONS",
    "PAPER_OPTIONS",
    "RELEASED_OPTIONS",
    "CAMOptions",
    "CAMResult",
    "Captured",
    "HeadSpec",
    "NotCAMCompatibleError",
    "TargetError",
    "capture",
    "eval_mode",
    "fc_weights",
    "find_head",
    "logits_from_features",
    "maps_from_features",
    "normalize_maps",
    "postprocess",
    "select_classes",
    "upsample_maps",
]

Pool = Literal["avg", "max"]


class NotCAMCompatibleError(ValueError):
    """The model's head is not ``global pooling -> one linear layer``, so CAM is undefined."""


class TargetError(ValueError):
    """Targets that do not fit the batch or the number of classes."""


@dataclass(frozen=True)
class HeadSpec:
    """What CAM needs of a classifier's head, as found (or checked) on a real forward pass.

    ``kind="linear"``: ``S = W pool(a(f)) + b`` with ``a`` the identity or a ReLU (``relu``) applied
    in the forward code (DenseNet does this). ``kind="score_map"``: a 1x1 convolution classifier
    (SqueezeNet): ``S_c = pool(relu(W_c f + b_c))``; the map is then ``relu(W_c f + b_c)`` itself.
    """

    feature_layer: str
    fc_layer: str
    pool: Pool = "avg"
    relu: bool = False
    kind: Literal["linear", "score_map"] = "linear"


_UPSAMPLE_MODES = ("bilinear", "bicubic", "none")
_NORMALIZE_MODES = ("minmax", "max", "none")


def _is_positive_int(v: object) -> bool:
    """An integer >= 1 (Python, numpy or 0-d integer tensor: anything ``operator.index`` takes); bools,
    floats (even 224.0) and strings are not."""
    if isinstance(v, bool) or (isinstance(v, Tensor) and (v.ndim > 0 or v.dtype == torch.bool)):
        return False
    try:
        return operator.index(v) >= 1  # type: ignore[arg-type]
    except TypeError:
        return False


@dataclass(frozen=True)
class CAMOptions:
    """Post-processing of raw maps; recorded with every result (``asdict(options)``).

    - ``upsample``: ``"bilinear"`` (default, as the released PyTorch demo), ``"bicubic"`` (the
      released Caffe code and Choe et al.) or ``"none"`` (keep the feature resolution).
    - ``size``: ``"input"`` (default, the network's input size), ``"original"`` (the image's own
      size, given to :func:`postprocess`) or an explicit ``(height, width)``.
    - ``relu``: clamp negative evidence to 0 before normalising (default ``False``: the paper's
      box rule works on the raw map).
    - ``normalize``: ``"minmax"`` -> (M - min) / (max - min) (default, Choe et al.); ``"max"`` ->
      M / max, the paper's "fraction of the max" scale; ``"none"``. Flat maps become all zeros
      (``"minmax"``), maps whose max is <= 0 become all zeros (``"max"``). Non-finite pixels (NaN,
      +-Inf) are left out of min and max and come out NaN, as :func:`camlib.core.boxes.paper_box`
      leaves them out of the box (see :func:`normalize_maps`).

    Every field is checked when the options are made: a misspelt mode or size raises ``ValueError``
    at once, not a silently different map later.
    """

    upsample: Literal["bilinear", "bicubic", "none"] = "bilinear"
    size: str | tuple[int, int] = "input"
    relu: bool = False
    normalize: Literal["minmax", "max", "none"] = "minmax"

    def __post_init__(self) -> None:
        if self.upsample not in _UPSAMPLE_MODES:
            raise ValueError(
                f"CAMOptions(upsample={self.upsample!r}): must be one of {', '.join(map(repr, _UPSAMPLE_MODES))}"
            )
        if self.normalize not in _NORMALIZE_MODES:
            raise ValueError(
                f"CAMOptions(normalize={self.normalize!r}): must be one of {', '.join(map(repr, _NORMALIZE_MODES))}"
            )
        if not isinstance(self.relu, bool):
            raise ValueError(f"CAMOptions(relu={self.relu!r}): must be True or False")
        size = self.size
        if isinstance(size, str):
            if size not in ("input", "original"):
                raise ValueError(
                    f"CAMOptions(size={size!r}): must be 'input', 'original' or a (height, width) pair of "
                    "positive integers, e.g. size=(224, 224)"
                )
            return
        try:
            pair = tuple(size)
        except TypeError:
            pair = ()
        if len(pair) != 2 or not all(_is_positive_int(v) for v in pair):
            raise ValueError(
                f"CAMOptions(size={size!r}): must be 'input', 'original' or a (height, width) pair of positive "
                "integers, e.g. size=(224, 224)"
            )
        object.__setattr__(self, "size", tuple(int(v) for v in pair))  # frozen: a list or torch.Size -> tuple

    def to_dict(self) -> dict:
        return asdict(self)


#: The paper's setting: bilinear upsampling to the image's own size, box where M >= 0.2 * max(M).
PAPER_OPTIONS = CAMOptions(upsample="bilinear", size="original", relu=False, normalize="max")
#: The released code's map: CAMs resized bicubically to the image; the box rule sees M / max(M).
RELEASED_OPTIONS = CAMOptions(upsample="bicubic", size="original", relu=False, normalize="max")
#: For showing maps over an image: bilinear to the image's size, min-max normalised.
DISPLAY_OPTIONS = CAMOptions(size="original")


@dataclass
class CAMResult:
    """Output of one :class:`CAM` call. ``maps[b, i]`` is the raw CAM of class ``classes[b, i]``."""

    logits: Tensor  # (B, C)
    features: Tensor  # (B, K, h, w), the pooled layer's input
    classes: Tensor  # (B, n) long
    maps: Tensor  # (B, n, h, w), raw M_c at feature resolution
    scores: Tensor  # (B, n) logits of ``classes``
    head: HeadSpec

    @property
    def probs(self) -> Tensor:
        return self.logits.softmax(dim=1)


def _check_targets(targets: Tensor | Sequence[int] | int, batch: int, num_classes: int) -> Tensor:
    """Targets as a (B, n) long tensor, or :class:`TargetError` naming what is wrong.

    Class indices must be integers: float targets (``2.7`` would silently become class 2) and bool
    targets (``True`` would become class 1, a mask would become classes 0/1) are refused, not coerced.
    """
    try:
        t = torch.as_tensor(targets)
    except (TypeError, ValueError, RuntimeError) as e:
        raise TargetError(f"targets must be integer class indices, got {targets!r} ({e})") from None
    if t.numel() and (t.dtype == torch.bool or t.is_floating_point() or t.is_complex()):
        raise TargetError(
            f"targets must be integer class indices, got dtype {t.dtype} ({_preview(t)}). Convert on purpose, "
            "e.g. targets.long() for whole-number floats or targets.nonzero() for a mask, so no class changes silently."
        )
    t = t.long()
    if t.ndim == 0:
        t = t.expand(batch)
    if t.ndim == 1:
        t = t[:, None]
    if t.ndim != 2 or t.shape[0] != batch:
        raise TargetError(
            f"targets must give one class (or one row of classes) per image: got shape {tuple(t.shape)} "
            f"for a batch of {batch}. Pass a list of {batch} class indices, or use topk=... instead."
        )
    if t.numel() and (t.min() < 0 or t.max() >= num_classes):
        raise TargetError(
            f"target class out of range [0, {num_classes}): got {t.min().item()}..{t.max().item()}"
        )
    return t


def _preview(t: Tensor, n: int = 6) -> str:
    values = t.flatten()[:n].tolist()
    return ", ".join(map(str, values)) + (", ..." if t.numel() > n else "")


# Modules that pool, drop or pass features through: never "the feature layer" themselves.
_PASS_THROUGH = (
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
    nn.AvgPool2d,
    nn.MaxPool2d,
    nn.Dropout,
    nn.Dropout2d,
    nn.Identity,
    nn.Flatten,
)


def _modules_by_name(model: nn.Module) -> dict[str, nn.Module]:
    return dict(model.named_modules())


class _StateGuard:
    """Put every submodule in eval mode and restore each one's own ``training`` flag afterwards.

    A model already in eval mode (the usual case at inference) is left alone: one pass over its
    modules, no ``eval()`` call and nothing to restore.
    """

    def __init__(self, model: nn.Module, eval_mode: bool) -> None:
        self.model, self.eval_mode = model, eval_mode
        self.saved: list[tuple[nn.Module, bool]] = []

    def __enter__(self) -> None:
        self.saved = []
        if not self.eval_mode:
            return
        modules = list(self.model.modules())
        if any(m.training for m in modules):
            self.saved = [(m, m.training) for m in modules]
            self.model.eval()

    def __exit__(self, *exc) -> None:
        for m, flag in self.saved:
            m.training = flag


class Captured(dict):
    """``{layer name: its latest tensor output}``, as :func:`capture` yields it; ``calls[name]``
    counts how often the layer ran (a layer may serve twice in one forward pass)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[str, int] = {}


class _StopForward(Exception):
    """Raised by a :func:`capture` hook with ``stop_after``: nothing after the layer needs to run."""


class _Recorder:
    """Forward hooks that keep the latest output of some modules; removed by :meth:`remove`."""

    def __init__(self, modules: dict[str, nn.Module], stop_after: int | None = None) -> None:
        self.outputs = Captured()
        self.order: list[str] = []
        self.stop_after = stop_after
        self.handles = [m.register_forward_hook(self._hook(name)) for name, m in modules.items()]

    def _hook(self, name: str):
        def hook(_module, _inputs, output):
            if isinstance(output, Tensor):
                self.outputs[name] = output
                self.order.append(name)
            calls = self.outputs.calls[name] = self.outputs.calls.get(name, 0) + 1
            if self.stop_after is not None and calls >= self.stop_after:
                raise _StopForward

        return hook

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()


@contextmanager
def eval_mode(model: nn.Module, enabled: bool = True) -> Iterator[nn.Module]:
    """Run a block with every submodule of ``model`` in eval mode, then restore each one's own flag.

    Dropout off and batch-norm on its running statistics while maps are made; a model that was
    training goes on training afterwards. ``enabled=False`` leaves the model as it is.
    """
    with _StateGuard(model, enabled):
        yield model


def _submodule(model: nn.Module, name: str) -> nn.Module:
    try:
        return model.get_submodule(name)
    except AttributeError:
        names = list(_modules_by_name(model))
        raise ValueError(
            f"{type(model).__name__} has no layer {name!r}; some it has: {', '.join(names[-8:])}"
        ) from None


@contextmanager
def capture(
    model: nn.Module, layers: str | Sequence[str], *, stop_after: int | None = None
) -> Iterator[Captured]:
    """Forward hooks on the named submodules for the duration of a block; yields ``{name: output}``.

    Each entry holds the latest tensor output of that layer (the features ``f_k(x, y)`` of CAM);
    ``.calls[name]`` counts the layer's calls. The hooks are removed when the block ends, also when
    it raises, so the model is left unchanged.

    ``stop_after=n`` (one layer only) cuts the forward pass short right after the layer's n-th call:
    nothing after the features runs, and the block ends there without an error (so put only the
    forward call in it). A layer that serves twice in one pass (EfficientNet's shared swish) has
    ``n = 2``: learn it from ``.calls`` after one full pass.
    """
    names = [layers] if isinstance(layers, str) else list(layers)
    if stop_after is not None and len(names) != 1:
        raise ValueError(f"stop_after needs exactly one layer, got {names}")
    recorder = _Recorder({n: _submodule(model, n) for n in names}, stop_after)
    try:
        yield recorder.outputs
    except _StopForward:
        pass
    finally:
        recorder.remove()


def _fc_weight(fc: nn.Module) -> tuple[Tensor, Tensor | None]:
    w = fc.weight
    if w.ndim == 4:
        if w.shape[2:] != (1, 1):
            raise NotCAMCompatibleError(f"conv classifier must be 1x1, got kernel {tuple(w.shape[2:])}")
        w = w[:, :, 0, 0]
    return w, fc.bias


def fc_weights(model: nn.Module, head: HeadSpec) -> tuple[Tensor, Tensor | None]:
    """The classifier of ``head`` as ``W`` (C, K) and ``b`` (C,) or None (a 1x1 conv kernel flattened)."""
    return _fc_weight(model.get_submodule(head.fc_layer))


def select_classes(
    logits: Tensor,
    targets: Tensor | Sequence[int] | Sequence[Sequence[int]] | int | None = None,
    *,
    topk: int | None = None,
) -> Tensor:
    """The (B, n) classes whose maps are wanted: ``targets`` (one class per image, or a (B, n)
    table), else the ``topk`` best scoring classes of each image (top-1 when neither is given)."""
    B, C = logits.shape
    if targets is not None:
        return _check_targets(targets, B, C).to(logits.device)
    if topk is not None and (isinstance(topk, bool) or not _is_positive_int(topk)):
        raise TargetError(f"topk must be a positive integer, got {topk!r}")
    k = 1 if topk is None else int(topk)
    if not 1 <= k <= C:
        raise TargetError(f"topk must be in [1, {C}], got {topk}")
    return logits.topk(k, dim=1).indices


def maps_from_features(
    features: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    classes: Tensor | None = None,
    kind: Literal["linear", "score_map"] = "linear",
    *,
    relu: bool = False,
) -> Tensor:
    """Class activation maps from features: the one place camlib computes ``M = W f``.

    ``features`` (B, K, h, w); ``weight`` (C, K); ``classes`` (B, n) long, or None for all C classes.
    Returns (B, n, h, w) (or (B, C, h, w))::

        M_c(x, y) = sum_k w_k^c a(f_k(x, y))          kind="linear", a = ReLU if relu else identity
        M_c(x, y) = relu(sum_k w_k^c f_k(x, y) + b_c)  kind="score_map" (a 1x1-conv classifier)

    For a linear head the bias is not part of the map (it only shifts S_c); for a score-map head
    the map IS the classifier's output, bias and ReLU included.
    """
    f = features.relu() if relu else features
    w = weight.to(f.dtype)
    if classes is None:
        # M = W f as ONE matrix product (B*h*w, K) @ (K, C): the same sum as
        # einsum("bkhw,ck->bchw"), laid out so the GEMM runs about 1.6x faster on CPU
        B, K, h, wd = f.shape
        maps = (f.permute(0, 2, 3, 1).reshape(-1, K) @ w.t()).view(B, h, wd, -1).permute(0, 3, 1, 2)
        b = bias
    else:
        maps = torch.einsum("bkhw,bnk->bnhw", f, w[classes])
        b = None if bias is None else bias[classes]
    if kind == "score_map":
        if b is not None:
            maps = maps + (b[None, :, None, None] if b.ndim == 1 else b[..., None, None])
        maps = maps.relu()
    return maps


def logits_from_features(
    features: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    *,
    pool: Pool = "avg",
    kind: Literal["linear", "score_map"] = "linear",
    relu: bool = False,
) -> Tensor:
    """The class scores (B, C) a CAM head computes from features (B, K, h, w)::

        S_c = sum_k w_k^c pool(a(f_k)) + b_c             kind="linear", a = ReLU if relu else identity
        S_c = pool(relu(sum_k w_k^c f_k + b_c))          kind="score_map": the pooled maps

    With the model's own features this reproduces its logits (what :class:`CAM` checks); on
    modified features (e.g. averaged over video frames) it gives the scores those features imply.
    """
    if kind == "score_map":
        maps = maps_from_features(features, weight, bias, None, "score_map")
        return maps.mean((2, 3)) if pool == "avg" else maps.amax((2, 3))
    a = features.relu() if relu else features
    pooled = a.mean((2, 3)) if pool == "avg" else a.amax((2, 3))
    return F.linear(pooled, weight, bias)


def _head_logits(f: Tensor, fc: nn.Module, spec_pool: Pool, relu: bool, kind: str) -> Tensor:
    w, b = _fc_weight(fc)
    return logits_from_features(f, w, b, pool=spec_pool, kind=kind, relu=relu)  # type: ignore[arg-type]


def _matches(pred: Tensor, logits: Tensor) -> bool:
    if pred.shape != logits.shape:
        return False
    scale = max(1.0, float(logits.abs().max()))
    return bool(torch.allclose(pred.float(), logits.float(), rtol=1e-3, atol=1e-3 * scale))


_WAY_OUT = (
    "CAM needs a head of the form: last conv features -> global average (or max) pooling -> ONE linear "
    "layer. Ways out: (1) name the layers yourself, CAM(model, feature_layer=..., fc_layer=...), if the "
    "head really has that form; (2) use a CAM-ready model (torchvision ResNet/DenseNet/EfficientNet/"
    "MobileNetV2/RegNet/GoogLeNet, camlib.models.load_efficientnet_lite0, camlib.models.gap_variant "
    "builders); (3) for a different head use a gradient method such as Grad-CAM (pytorch-grad-cam)."
)


class CAM:
    """Class activation maps for a classifier ending in global pooling + one linear layer.

    Usage::

        with CAM(model) as cam:                      # layers found automatically on the first call
            out = cam(x, topk=5)                     # or targets=[...] or all_classes=True
        maps = postprocess(out.maps, CAMOptions(), input_size=x.shape[-2:])

    The model is never modified: hooks live only during a call and are removed even when the call
    raises, and every submodule's train/eval flag is restored afterwards.
    """

    def __init__(
        self,
        model: nn.Module,
        feature_layer: str | None = None,
        fc_layer: str | None = None,
        *,
        eval_mode: bool = True,
    ) -> None:
        self.model = model
        self.eval_mode = eval_mode
        names = _modules_by_name(model)
        for label, name in (("feature_layer", feature_layer), ("fc_layer", fc_layer)):
            if name is not None and name not in names:
                raise NotCAMCompatibleError(
                    f"{label}={name!r} is not a submodule of {type(model).__name__}; "
                    f"some names it has: {', '.join(list(names)[-8:])}"
                )
        self._requested = (feature_layer, fc_layer)
        self.head: HeadSpec | None = None

    # -- context manager: nothing stays registered between calls, so exit only drops references
    def __enter__(self) -> CAM:
        return self

    def __exit__(self, *exc) -> None:
        return None

    # -- head resolution -----------------------------------------------------------------------
    def _resolve(self, recorder: _Recorder, logits: Tensor) -> HeadSpec:
        names = _modules_by_name(self.model)
        feat_name, fc_name = self._requested
        C = logits.shape[1]
        order = recorder.order
        if fc_name is None:
            for name in reversed(order):
                m = names[name]
                if isinstance(m, nn.Linear) and m.out_features == C:
                    fc_name = name
                    break
                if isinstance(m, nn.Conv2d) and m.out_channels == C and m.kernel_size == (1, 1):
                    fc_name = name
                    break
        if fc_name is None:
            raise NotCAMCompatibleError(
                f"{type(self.model).__name__}: no linear (or 1x1 conv) layer with {C} outputs was "
                f"called in the forward pass. {_WAY_OUT}"
            )
        fc = names[fc_name]
        w, _ = _fc_weight(fc)
        K = w.shape[1]
        if not bool(w.detach().ne(0).any()):
            # with W = 0 every candidate head predicts S = b whatever the features: the logit check
            # below would pass for any model (a fresh torchvision ViT has a zero head), and every map is 0
            raise NotCAMCompatibleError(
                f"{type(self.model).__name__}: cannot decide whether the head is CAM-compatible: the weights "
                f"of {fc_name!r} are all zero (W = 0), so S = b whatever the features and every class "
                "activation map would be 0. Train the model or load its trained weights first, then call CAM "
                f"again. If the model is not global pooling -> one linear layer, no weights will make it so. {_WAY_OUT}"
            )
        kind = "score_map" if isinstance(fc, nn.Conv2d) else "linear"
        if feat_name is None:
            fc_pos = len(order) - 1 - order[::-1].index(fc_name) if fc_name in order else len(order)
            for name in reversed(order[:fc_pos]):
                out = recorder.outputs.get(name)
                if isinstance(names[name], _PASS_THROUGH) or name == fc_name:
                    continue
                # a 1x1 output is already pooled (or normalised after pooling): not a map
                if (
                    out is not None
                    and out.ndim == 4
                    and out.shape[1] == K
                    and out.shape[2] * out.shape[3] > 1
                ):
                    feat_name = name
                    break
        if feat_name is None:
            raise NotCAMCompatibleError(
                f"{type(self.model).__name__}: the layer {fc_name!r} takes {K} inputs but no "
                f"convolutional layer with {K} channels feeds it (a fully connected stack, as in "
                f"VGG/AlexNet or MobileNetV3, sits between the features and the classifier). {_WAY_OUT}"
            )
        f = recorder.outputs[feat_name]
        # every candidate head that reproduces the logits; the closest one wins (a freshly initialised
        # network with ~0 logits can fit both avg and max within tolerance)
        candidates = []
        for pool in ("avg", "max"):
            for relu in (False, True):
                if kind == "score_map" and relu:
                    continue
                pred = _head_logits(f, fc, pool, relu, kind)
                if _matches(pred, logits):
                    candidates.append(
                        (float((pred - logits).abs().max()), HeadSpec(feat_name, fc_name, pool, relu, kind))
                    )
        if candidates:
            return min(candidates, key=lambda c: c[0])[1]
        raise NotCAMCompatibleError(
            f"{type(self.model).__name__}: {fc_name!r}(global pooling({feat_name!r})) does not "
            f"reproduce the model's logits, so something else (a normalisation after pooling as in "
            f"ConvNeXt, a hidden layer, attention) sits in the head. {_WAY_OUT}"
        )

    # -- the call ------------------------------------------------------------------------------
    def __call__(
        self,
        x: Tensor,
        targets: Tensor | Sequence[int] | Sequence[Sequence[int]] | int | None = None,
        *,
        topk: int | None = None,
        all_classes: bool = False,
        grad: bool = False,
    ) -> CAMResult:
        """One forward pass: logits, features and the raw maps of the chosen classes.

        Exactly one of ``targets`` (one class per image, or a (B, n) table), ``topk`` (the k best
        scoring classes of each image) or ``all_classes=True`` may be given; none means top-1.
        """
        chosen = sum(v is not None and v is not False for v in (targets, topk, all_classes or None))
        if chosen > 1:
            raise TargetError("give only one of targets=, topk= or all_classes=True")
        if not isinstance(x, Tensor) or x.ndim != 4:
            raise TargetError(
                f"expected a (B, 3, H, W) image tensor, got {type(x).__name__} "
                f"{tuple(x.shape) if isinstance(x, Tensor) else ''}; add a batch dimension with x[None]"
            )
        if self.head is None:
            watch = {n: m for n, m in _modules_by_name(self.model).items() if n}
        else:  # one lookup, not a walk over every module (this runs on every call)
            watch = {self.head.feature_layer: self.model.get_submodule(self.head.feature_layer)}
        recorder = _Recorder(watch)
        try:
            grad_ctx = torch.enable_grad() if grad else torch.inference_mode()
            with eval_mode(self.model, self.eval_mode), grad_ctx:
                logits = self.model(x)
                if not isinstance(logits, Tensor) or logits.ndim != 2:
                    raise NotCAMCompatibleError(
                        f"the model returned {type(logits).__name__}"
                        f"{tuple(logits.shape) if isinstance(logits, Tensor) else ''}, not (B, C) logits. "
                        + _WAY_OUT
                    )
                if self.head is None:
                    self.head = self._resolve(recorder, logits)
                features = recorder.outputs[self.head.feature_layer]
                return self._maps(features, logits, targets, topk, all_classes)
        finally:
            recorder.remove()

    def _maps(self, features, logits, targets, topk, all_classes) -> CAMResult:
        head = self.head
        assert head is not None
        w, b = fc_weights(self.model, head)
        B, C = logits.shape
        if features.shape[0] != B:
            raise NotCAMCompatibleError("feature batch differs from logits batch; is the layer reused?")
        if all_classes:
            classes = torch.arange(C, device=logits.device).expand(B, C)
            maps = maps_from_features(features, w, b, None, head.kind, relu=head.relu)
        else:
            classes = select_classes(logits, targets, topk=topk)
            maps = maps_from_features(features, w, b, classes, head.kind, relu=head.relu)
        scores = logits.gather(1, classes)
        return CAMResult(logits, features, classes, maps, scores, head)


def find_head(
    model: nn.Module, example: Tensor, feature_layer: str | None = None, fc_layer: str | None = None
) -> HeadSpec:
    """The CAM head of ``model`` (feature layer, pooling, classifier, kind), found by :class:`CAM` on
    one forward pass of ``example[:1]`` (or checked, when the layer names are given)."""
    cam = CAM(model, feature_layer, fc_layer)
    cam(example[:1])
    assert cam.head is not None
    return cam.head


# -- post-processing ----------------------------------------------------------------------------
def upsample_maps(maps: Tensor, size: tuple[int, int], mode: str = "bilinear") -> Tensor:
    """Resize (B, n, h, w) maps to ``size`` = (H, W); ``mode`` 'bilinear' | 'bicubic' | 'none'."""
    if mode == "none" or tuple(maps.shape[-2:]) == tuple(size):
        return maps
    if mode not in ("bilinear", "bicubic"):
        raise ValueError(f"upsample must be 'bilinear', 'bicubic' or 'none', got {mode!r}")
    return F.interpolate(maps, size=tuple(int(s) for s in size), mode=mode, align_corners=False)


def normalize_maps(maps: Tensor, mode: str = "minmax") -> Tensor:
    """Per-map normalisation over the last two dims (see :class:`CAMOptions`)::

        "minmax":  N(x, y) = (M(x, y) - min M) / (max M - min M)   (a flat map, max = min, -> 0)
        "max":     N(x, y) = M(x, y) / max M                        (a map with max M <= 0 -> 0)

    Non-finite values follow :func:`camlib.core.boxes.paper_box`'s rule: min and max are taken over
    the FINITE pixels only, and NaN, +Inf and -Inf pixels come out NaN ("no value": never part of a
    box, shown transparent). So one -Inf pixel does not turn the whole map into NaN, nor does one +Inf
    pixel squash every other pixel to 0; a map without a finite pixel comes out all NaN. Tiny
    (subnormal) maps are divided by their true range, not by the smallest normal float, so a map of
    values around 1e-40 still spans [0, 1]. Maps that are finite with a normal range (the usual case)
    take a fast path whose result is bit-identical to the plain formula.
    """
    if mode not in _NORMALIZE_MODES:
        raise ValueError(f"normalize must be 'minmax', 'max' or 'none', got {mode!r}")
    if mode == "none":
        return maps
    if not maps.is_floating_point():
        maps = maps.float()
    flat = maps.flatten(-2)
    if not flat.numel():
        return maps.clone()
    tiny = torch.finfo(maps.dtype).tiny
    # fast path: both extremes in one pass; finite maps with a normal range (the usual case) need no masking
    lo, hi = torch.aminmax(flat, dim=-1)  # a NaN or Inf anywhere in a map shows in its lo / hi
    span = hi - lo
    if mode == "max":
        regular = hi.isfinite() & lo.isfinite() & ((hi <= 0) | (hi >= tiny))
    else:
        regular = span.isfinite() & ((span == 0) | (span >= tiny))  # a NaN span fails both
    if bool(regular.all()):
        lo, hi, span = lo[..., None, None], hi[..., None, None], span[..., None, None]
        if mode == "max":
            return torch.where(hi > 0, maps / hi.clamp_min(tiny), 0.0)
        return torch.where(span > 0, (maps - lo) / span.clamp_min(tiny), 0.0)
    # slow path: statistics over the finite pixels (float64 only where max - min could overflow)
    finite = maps.isfinite()
    work = maps
    if maps.dtype != torch.float64 and bool(
        maps.masked_fill(~finite, 0).abs().amax() > torch.finfo(maps.dtype).max / 2
    ):
        work = maps.double()
    lo = work.masked_fill(~finite, torch.inf).flatten(-2).amin(-1)[..., None, None]
    hi = work.masked_fill(~finite, -torch.inf).flatten(-2).amax(-1)[..., None, None]  # -inf: no finite pixel
    if mode == "max":
        out = torch.where(hi > 0, work / torch.where(hi > 0, hi, 1.0), 0.0)
    else:
        span = hi - lo  # -inf when no pixel is finite: not > 0
        # divided by the true range (subnormal divisions are exact IEEE operations), never by a clamp
        out = torch.where(span > 0, (work - lo) / torch.where(span > 0, span, 1.0), 0.0)
    return out.masked_fill(~finite, torch.nan).to(maps.dtype)


def postprocess(
    maps: Tensor,
    options: CAMOptions = CAMOptions(),
    *,
    input_size: tuple[int, int] | None = None,
    original_size: tuple[int, int] | None = None,
) -> Tensor:
    """Apply ``options`` to raw (B, n, h, w) maps: upsample, then optional ReLU, then normalise."""
    if options.upsample != "none":
        if options.size == "input":
            if input_size is None:
                raise ValueError("CAMOptions(size='input') needs input_size=(H, W)")
            size = input_size
        elif options.size == "original":
            if original_size is None:
                raise ValueError("CAMOptions(size='original') needs original_size=(H, W)")
            size = original_size
        else:
            size = tuple(options.size)  # type: ignore[arg-type]
        maps = upsample_maps(maps.float(), size, options.upsample)
    if options.relu:
        maps = maps.relu()
    return normalize_maps(maps, options.normalize)
