"""The methods ``make bench`` times, on one model and one input batch, and the checks that they agree.

Every method delivers the same thing where it can: the map of each image's top-1 class at the input
size (224 x 224), min-max normalised; camlib's all-class variant stops at feature resolution.

- ``plain``: ``model(x)`` under ``torch.inference_mode`` (the floor: logits only);
- ``camlib_top1``: :class:`camlib.core.cam.CAM` top-1 map + :func:`camlib.core.cam.postprocess` (bilinear to
  224, min-max);
- ``camlib_all``: ``CAM(model)(x, all_classes=True)``: logits, features and the maps of ALL classes at
  feature resolution (one (B*h*w, K) x (K, C) matrix product);
- ``torchcam``: torchcam's ``CAM`` as its README shows (``with CAM(model, layer, fc)``, forward
  under ``inference_mode``, ``extractor(class_idx, scores)``: min-max normalised maps at feature
  resolution), then bilinear to 224 with the same ``F.interpolate`` camlib uses;
- ``gradcam``: pytorch-grad-cam's ``GradCAM`` as its README shows (``with GradCAM(model,
  target_layers) as cam: cam(input_tensor=x, targets=None)``): forward + backward, ReLU, min-max and
  OpenCV resize to 224, numpy out. It needs gradients, so no ``inference_mode``.

Agreement (:func:`torchcam_agreement`, :func:`gradcam_agreement`): on a GAP + linear head
``M_c = sum_k w_k^c f_k`` (CAM) and Grad-CAM's ``sum_k alpha_k^c f_k`` with
``alpha_k^c = mean_{x,y} dS_c / df_k(x, y) = w_k^c / (h w)``: the two maps are proportional, so after
ReLU and min-max normalisation they are equal up to resizing.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.models as tvm
from torch import Tensor, nn

from camlib.core.cam import CAM, CAMOptions, normalize_maps, postprocess, upsample_maps

MODELS = ("resnet50", "googlenet", "efficientnet_lite0")
METHODS = ("plain", "camlib_top1", "camlib_all", "torchcam", "gradcam")


class FeaturesTap(nn.Module):
    """EfficientNet-Lite0 with an ``nn.Identity`` named ``features`` on its CAM feature map.

    The wheel's model applies ONE ``_swish`` module to the stem and to the head; hook-based tools that
    keep the first call (pytorch-grad-cam) would take the stem's map. The tap costs nothing and is used
    by every method, so all of them time the same network.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.features = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        m = self.model
        f = self.features(m.extract_features(x))
        return m._fc(m._dropout(m._avg_pooling(f).flatten(1)))


def build_model(name: str, size: int = 224) -> nn.Module:
    """Random-initialised torchvision ResNet-50 / GoogLeNet (same cost as trained ones; BatchNorm
    calibrated on ``size`` x ``size`` random inputs), the real EfficientNet-Lite0; eval mode."""
    torch.manual_seed(0)
    if name in ("resnet50", "resnet18"):
        model = getattr(tvm, name)()
    elif name == "googlenet":
        # PyTorch's default initialisation: torchvision's init_weights (truncated normal, std 0.01) makes
        # the last features ~1e-8 and the maps flat to within torchcam's normalisation epsilon
        model = tvm.googlenet(aux_logits=False, init_weights=False)
    elif name == "efficientnet_lite0":
        from camlib.models import load_efficientnet_lite0

        model = FeaturesTap(load_efficientnet_lite0().model)
    else:
        raise ValueError(f"unknown model {name!r}")
    return model.eval() if name == "efficientnet_lite0" else calibrate_batchnorm(model, size)


def calibrate_batchnorm(
    model: nn.Module, size: int = 224, batches: int = 2, batch_size: int = 8
) -> nn.Module:
    """Give a random-initialised network's BatchNorm layers the statistics of random inputs.

    Fresh running statistics (mean 0, variance 1) leave a deep random network's last features at
    ~1e-6, where every map is flat to within a normalisation epsilon; with calibrated statistics the
    maps have ordinary magnitudes. The cost of a forward pass is unchanged.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    g = torch.Generator().manual_seed(1)
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            model(torch.randn(batch_size, 3, size, size, generator=g))
    return model.eval()


def head_of(model: nn.Module, size: int = 224) -> tuple[str, str]:
    """(feature layer, fc layer) names, found by camlib and handed to the other libraries too."""
    if isinstance(model, FeaturesTap):
        return "features", "model._fc"
    cam = CAM(model)
    cam(torch.zeros(1, 3, size, size))
    assert cam.head is not None
    return cam.head.feature_layer, cam.head.fc_layer


def make_methods(model: nn.Module, x: Tensor, available: set[str]) -> dict[str, Callable[[], object]]:
    """Zero-argument callables, one per method in ``available`` (all on the same ``model`` and ``x``)."""
    feat, fc = head_of(model, x.shape[-1])
    size = tuple(x.shape[-2:])
    cam = CAM(model, feat, fc)
    modules = dict(model.named_modules())
    opts = CAMOptions(size="input")

    def plain():
        with torch.inference_mode():
            return model(x)

    def camlib_top1():
        return postprocess(cam(x).maps, opts, input_size=size)

    def camlib_all():
        return cam(x, all_classes=True).maps

    out: dict[str, Callable[[], object]] = {
        "plain": plain,
        "camlib_top1": camlib_top1,
        "camlib_all": camlib_all,
    }
    if "torchcam" in available:
        from torchcam.methods import CAM as TorchCAM

        def torchcam():
            with TorchCAM(model, feat, fc, input_shape=tuple(x.shape[1:])) as extractor:
                with torch.inference_mode():
                    scores = model(x)
                maps = extractor(scores.argmax(1).tolist(), scores)[0]
            return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)

        out["torchcam"] = torchcam
    if "gradcam" in available:
        from pytorch_grad_cam import GradCAM

        def gradcam():
            with GradCAM(model=model, target_layers=[modules[feat]]) as gc:
                return gc(input_tensor=x, targets=None)

        out["gradcam"] = gradcam
    return out


def _corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each pair of maps (rows of (B, ...) arrays)."""
    a = a.reshape(len(a), -1) - a.reshape(len(a), -1).mean(1, keepdims=True)
    b = b.reshape(len(b), -1) - b.reshape(len(b), -1).mean(1, keepdims=True)
    return np.clip((a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1)), -1.0, 1.0)


def torchcam_agreement(model: nn.Module, x: Tensor) -> dict:
    """camlib's raw top-1 CAM min-max normalised vs torchcam's ``CAM`` (its min-max) on the same input.

    Returns the largest absolute difference (maps in [0, 1]); they should agree to float precision.
    """
    from torchcam.methods import CAM as TorchCAM

    feat, fc = head_of(model, x.shape[-1])
    out = CAM(model, feat, fc)(x)
    ours = normalize_maps(out.maps[:, 0].float(), "minmax")
    with TorchCAM(model, feat, fc, input_shape=tuple(x.shape[1:])) as extractor:
        with torch.inference_mode():
            scores = model(x)
        theirs = extractor(out.classes[:, 0].tolist(), scores)[0]
    return {"max_abs_diff": float((ours - theirs).abs().max()), "classes_equal": bool(
        torch.equal(scores.argmax(1), out.classes[:, 0])), "n": len(x)}  # fmt: skip


def gradcam_agreement(model: nn.Module, x: Tensor) -> dict:
    """Grad-CAM on the CAM feature layer vs CAM for the same (top-1) classes.

    ``corr_raw``: per image, Pearson correlation of Grad-CAM's map before ReLU and resizing (from the
    library's stored activations and gradients) with camlib's raw CAM, at feature resolution: 1 when
    they are proportional; ``raw_rel_err``: ``max |h w * GradCAM_raw - CAM| / max |CAM|`` (Grad-CAM's
    weights are the fc weights / hw, so this is float error only). ``corr_input``: correlation of
    pytorch-grad-cam's output (ReLU, min-max, OpenCV bilinear resize) with camlib's map put through
    the same steps in the same order (ReLU, min-max, torch bilinear resize).
    """
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    feat, fc = head_of(model, x.shape[-1])
    out = CAM(model, feat, fc)(x)
    classes = out.classes[:, 0].tolist()
    ours = upsample_maps(normalize_maps(out.maps.float().relu()), tuple(x.shape[-2:]))[:, 0]
    layer = dict(model.named_modules())[feat]
    with GradCAM(model=model, target_layers=[layer]) as gc:
        theirs = gc(input_tensor=x, targets=[ClassifierOutputTarget(c) for c in classes])
        acts = gc.activations_and_grads.activations[-1].numpy()
        grads = gc.activations_and_grads.gradients[-1].numpy()
    raw = (grads.mean((2, 3))[:, :, None, None] * acts).sum(1)  # Grad-CAM before ReLU and resizing
    h, w = raw.shape[-2:]
    cam_raw = out.maps[:, 0].float().numpy()
    corr, corr_raw = _corr(theirs, ours.numpy()), _corr(raw, cam_raw)
    return {"corr_raw_min": float(corr_raw.min()), "corr_input_min": float(corr.min()), "corr_input": corr.tolist(),
            "raw_rel_err": float(np.abs(raw * h * w - cam_raw).max() / np.abs(cam_raw).max()), "n": len(x)}  # fmt: skip
