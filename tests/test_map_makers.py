"""Every map maker gives CAM's maps: the explorer and the video pipeline, on a linear head and on a
1x1-conv ("score_map", SqueezeNet-style) head whose map includes the classifier's bias and ReLU.

The score_map case fails on code that redoes ``W f`` by itself (no bias, no ReLU): with a non-zero
classifier bias that map differs from CAM's after normalisation.
"""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from camlib.core.cam import CAM, DISPLAY_OPTIONS, CAMOptions, postprocess
from camlib.core.video_out import VideoWriter
from camlib.datasets.video import iter_frames, synthesize_clip
from camlib.models import ImageNetModel, SmallGAPNet
from camlib.paper import video as V
from camlib.tools.explorer import CAMExplorer, ExplorerState, as_explorer_model

CLASSES = ["a", "b", "c", "d"]


class TinySqueeze(nn.Module):
    """SqueezeNet's head in small: features -> Dropout -> 1x1 conv (C maps) -> ReLU -> global average."""

    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()
        )
        self.classifier = nn.Sequential(
            nn.Dropout(0.5), nn.Conv2d(8, num_classes, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1)
        )

    def forward(self, x):
        return torch.flatten(self.classifier(self.features(x)), 1)


def _net(kind: str) -> nn.Module:
    torch.manual_seed(0)
    if kind == "linear":
        return SmallGAPNet(len(CLASSES), channels=(4, 8), width=8).eval()
    net = TinySqueeze(len(CLASSES)).eval()
    with torch.no_grad():  # a NON-ZERO classifier bias, on the scale of W f so that the ReLU clips part
        net.classifier[1].weight.mul_(30.0)  # of the maps: both are part of a score-map head's map
        net.classifier[1].bias.copy_(torch.tensor([0.2, -0.5, -0.9, 0.5]))
    return net


def _pre(x):  # uint8 (3, H, W) -> float (3, 32, 32)
    return F.interpolate(x[None].float() / 255, size=(32, 32), mode="bilinear", align_corners=False)[0]


@pytest.mark.parametrize("kind", ["linear", "score_map"])
def test_explorer_map_is_cams_map(kind):
    net = _net(kind)
    rng = np.random.default_rng(0)
    images = {f"img{i}": rng.integers(0, 256, (40, 48, 3), dtype=np.uint8) for i in range(2)}
    ex = CAMExplorer(images, {"m": as_explorer_model(net, "m", CLASSES)})
    cam = CAM(net)
    opts = CAMOptions(upsample="bilinear", size="original", normalize="max")
    for name, img in images.items():
        x = torch.from_numpy(img).permute(2, 0, 1).float()[None] / 255.0
        for rank in range(len(CLASSES)):
            r = ex.compute(ExplorerState(name, "m", rank=rank, topk=len(CLASSES)))
            out = cam(x, targets=[r["selected"]])
            assert out.head.kind == kind
            ref = postprocess(out.maps, opts, original_size=img.shape[:2])[0, 0].numpy()
            np.testing.assert_allclose(r["map"], ref, rtol=0, atol=1e-6, err_msg=f"{kind} {name} rank {rank}")


def _jet_blend(frames: np.ndarray, norm: np.ndarray, alpha: float) -> np.ndarray:
    lut = (matplotlib.colormaps["jet"](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.float32)
    heat = lut[np.clip((norm * 255).astype(np.int64), 0, 255)]
    return ((1 - alpha) * frames.astype(np.float32) + alpha * heat).round().clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize("kind", ["linear", "score_map"])
def test_video_overlay_is_cams_map(kind, tmp_path, monkeypatch):
    net = _net(kind)
    model = ImageNetModel("tiny", net, _pre, (32, 32), CLASSES, "random init")
    src = tmp_path / "in.mp4"
    synthesize_clip(src, ("coffee", "chelsea"), size=(64, 48), fps=3, seconds_per_image=1.0)
    written = []
    original = VideoWriter.write
    monkeypatch.setattr(
        VideoWriter, "write", lambda self, f: (written.append(np.array(f)), original(self, f))[1]
    )
    alpha = 0.45
    st = V.process_video(src, tmp_path / "out.mp4", model, batch_size=6, alpha=alpha, progress=False)
    frames = np.stack(list(iter_frames(src)))
    assert st.frames == len(frames) == len(written) == 6
    x = V.frame_transform(model)(frames)
    out = CAM(net)(x)  # top-1, as the video shows it
    assert out.head.kind == kind
    assert [r["class"] for r in st.records] == out.classes[:, 0].tolist()
    if kind == "score_map":  # the test means something only if bias + ReLU shape the shown maps
        assert (out.maps == 0).any() and (out.maps > 0).any()
    norm = postprocess(out.maps, DISPLAY_OPTIONS, original_size=frames.shape[1:3])[:, 0].numpy()
    expected = _jet_blend(frames, norm, alpha)
    below_label = slice(frames.shape[1] // 2, None)  # the label box (17 px here) sits in the top-left corner
    got = np.stack(written)[:, below_label].astype(int)
    diff = np.abs(got - expected[:, below_label].astype(int))
    assert diff.max() == 0, f"{kind}: overlay differs from CAM's map by up to {diff.max()} levels"


@pytest.mark.parametrize("kind", ["linear", "score_map"])
def test_frame_cams_without_smoothing_are_cams_maps(kind):
    net = _net(kind)
    x = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    cls, score, maps = V.FrameCAMs(net, smooth=0.0)(x)
    out = CAM(net)(x, targets=cls)
    assert cls.tolist() == CAM(net)(x).classes[:, 0].tolist()
    assert torch.equal(maps, out.maps[:, 0])
    torch.testing.assert_close(score, out.probs.gather(1, cls[:, None])[:, 0])
