"""CAM on video: the class activation map of the top-1 class, frame by frame (paper, section 4.2).

Everything streams: frames are decoded one by one with PyAV, grouped in batches of ``batch_size``
for the model, overlaid, encoded and dropped, so memory does not grow with the video's length (the
GIF preview keeps at most ``max_frames`` small frames, the per-frame record a few numbers a frame).

Temporal smoothing (``smooth`` = s in [0, 1)) is an exponential moving average of the CAM FEATURES
``f_k(x, y)`` over frames: ``e_t = s e_{t-1} + (1 - s) f_t``. CAM is linear in the features, so this
smooths the map of EVERY class and (for average pooling) every logit at once:
``M_c(e_t) = s M_c(e_{t-1}) + (1 - s) M_c(f_t)``. The top-1 class, its score (softmax of the
smoothed logits) and its map are then read from ``e_t``. ``smooth=0`` is plain per-frame CAM.

Command line::

    python -m camlib.video in.mp4 out.mp4 --model efficientnet_lite0 [--smooth 0.5] [--batch 8] \
        [--gif out.gif] [--stats stats.json]

:func:`synthesize_clip` makes a short clip from skimage.data photos (pan and zoom over an astronaut,
a cup of coffee, a cat) so that all of this runs without any download.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from camlib.core.cam import CAM

__all__ = [
    "GifPreview",
    "PeakRSS",
    "VideoCAMStats",
    "VideoError",
    "VideoInfo",
    "VideoWriter",
    "count_frames",
    "frame_transform",
    "iter_frames",
    "ken_burns_frames",
    "load_model",
    "main",
    "measure_in_subprocess",
    "label_switches",
    "pick_codec",
    "plot_strip",
    "plot_timeline",
    "probe",
    "process_video",
    "read_frames",
    "rss_bytes",
    "synthesize_clip",
]

DEFAULT_PHOTOS = ("astronaut", "coffee", "chelsea")


class VideoError(ValueError):
    """A video that cannot be opened or decoded (corrupt, truncated, not a video, no video stream)."""


# --------------------------------------------------------------------------- reading


@dataclass
class VideoInfo:
    """What the container says about its first video stream (``frames`` is 0 when it does not say)."""

    path: str
    width: int
    height: int
    fps: float
    frames: int
    codec: str


def _check_exists(path: str | Path) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"video file {p} does not exist")
    if not p.is_file():
        raise VideoError(f"{p} is not a file")
    return p


def _open(path: str | Path):
    import av

    p = _check_exists(path)
    try:
        container = av.open(str(p))
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise VideoError(
            f"cannot read {p} as a video ({type(exc).__name__}: {exc}); the file is corrupt, truncated "
            "or not a video. Re-export it (e.g. ffmpeg -i in -c:v libx264 out.mp4) and try again."
        ) from exc
    if not container.streams.video:
        container.close()
        raise VideoError(f"{p} holds no video stream (audio only?)")
    return container


def probe(path: str | Path) -> VideoInfo:
    """Size, frame rate, frame count (as stored; 0 = unknown) and codec of a video file."""
    container = _open(path)
    try:
        s = container.streams.video[0]
        rate = s.average_rate or s.guessed_rate or s.base_rate
        return VideoInfo(
            path=str(path),
            width=int(s.codec_context.width),
            height=int(s.codec_context.height),
            fps=float(rate) if rate else 25.0,
            frames=int(s.frames or 0),
            codec=str(s.codec_context.name),
        )
    finally:
        container.close()


def iter_frames(path: str | Path, *, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """Decode a video frame by frame as (H, W, 3) uint8 RGB arrays; one frame in memory at a time."""
    import av

    container = _open(path)
    n = 0
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24")
                n += 1
                if max_frames is not None and n >= max_frames:
                    return
        except av.error.FFmpegError as exc:
            raise VideoError(f"{path}: decoding failed after {n} frames ({exc}); the file is corrupt") from exc
        if n == 0:
            raise VideoError(f"{path}: no frame could be decoded; the file is corrupt or empty")
    finally:
        container.close()


def count_frames(path: str | Path) -> int:
    """The number of frames, by decoding them all (exact, whatever the container stores)."""
    return sum(1 for _ in iter_frames(path))


def read_frames(path: str | Path, indices: Iterable[int]) -> dict[int, np.ndarray]:
    """Only the frames at ``indices`` (0-based), streamed: {index: (H, W, 3) uint8}."""
    want = set(int(i) for i in indices)
    out: dict[int, np.ndarray] = {}
    if not want:
        return out
    last = max(want)
    for i, f in enumerate(iter_frames(path, max_frames=last + 1)):
        if i in want:
            out[i] = f
    return out


# --------------------------------------------------------------------------- writing


def pick_codec(preferred: Sequence[str] = ("libx264", "mpeg4")) -> str:
    """The first encoder of ``preferred`` that this PyAV/FFmpeg build has (H.264, else MPEG-4 part 2)."""
    import av

    for name in preferred:
        if name in av.codecs_available:
            try:
                av.codec.Codec(name, "w")
            except Exception:
                continue
            return name
    raise VideoError(f"none of the video encoders {list(preferred)} is available in this FFmpeg build")


class VideoWriter:
    """Write (H, W, 3) uint8 RGB frames to an MP4 file, one at a time (H.264 when available).

    The size is taken from the first frame; odd sizes are padded by one pixel (edge copy) because
    yuv420p needs even dimensions. Use as a context manager, or call :meth:`close` to flush.
    """

    def __init__(self, path: str | Path, fps: float, *, codec: str | None = None, crf: int = 23) -> None:
        import av

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps = Fraction(fps).limit_denominator(1001)
        self.codec = codec or pick_codec()
        self.crf = crf
        self.frames = 0
        self.size: tuple[int, int] | None = None  # (H, W) as written
        self._container = av.open(str(self.path), mode="w")
        self._stream = None

    def _start(self, h: int, w: int) -> None:
        s = self._container.add_stream(self.codec, rate=self.fps)
        s.width, s.height = w + w % 2, h + h % 2
        s.pix_fmt = "yuv420p"
        if self.codec == "libx264":
            s.options = {"crf": str(self.crf), "preset": "veryfast"}
        else:
            s.bit_rate = int(max(4e5, 6.0 * s.width * s.height * float(self.fps)))
        self._stream = s
        self.size = (s.height, s.width)

    def write(self, frame: np.ndarray) -> None:
        import av

        a = np.asarray(frame)
        if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
            raise ValueError(f"frames must be (H, W, 3) uint8 RGB, got {a.shape} {a.dtype}")
        if self._stream is None:
            self._start(a.shape[0], a.shape[1])
        H, W = self.size
        if a.shape[:2] != (H, W):
            if (a.shape[0] + a.shape[0] % 2, a.shape[1] + a.shape[1] % 2) != (H, W):
                raise ValueError(f"frame size {a.shape[:2]} differs from the first frame's {self.size}")
            a = np.pad(a, ((0, H - a.shape[0]), (0, W - a.shape[1]), (0, 0)), mode="edge")
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(a), format="rgb24")
        for packet in self._stream.encode(vf):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        if self._container is None:
            return
        try:
            if self._stream is not None:
                for packet in self._stream.encode(None):
                    self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class GifPreview:
    """A GIF of at most ``max_frames`` frames, ``width`` pixels wide, evenly spaced over the video.

    Frames are offered one by one; whenever the buffer would exceed ``max_frames``, every other kept
    frame is dropped and the stride doubles, so memory is bounded for any length. Saved with Pillow.
    """

    def __init__(self, path: str | Path, fps: float, *, max_frames: int = 48, width: int = 240) -> None:
        if max_frames < 2:
            raise ValueError("max_frames must be >= 2")
        self.path, self.fps, self.max_frames, self.width = Path(path), float(fps), int(max_frames), int(width)
        self.stride, self.offered = 1, 0
        self.frames: list = []

    def add(self, frame: np.ndarray) -> None:
        from PIL import Image

        if self.offered % self.stride == 0:
            im = Image.fromarray(frame)
            h = max(1, round(frame.shape[0] * self.width / frame.shape[1]))
            self.frames.append(im.resize((self.width, h), Image.BILINEAR))
            if len(self.frames) > self.max_frames:
                self.frames = self.frames[::2]
                self.stride *= 2
        self.offered += 1

    def close(self) -> Path | None:
        if not self.frames:
            return None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        duration = max(20, round(1000.0 * self.stride / self.fps))
        self.frames[0].save(
            self.path, save_all=True, append_images=self.frames[1:], duration=duration, loop=0, optimize=False
        )
        self.frames = []
        return self.path


# --------------------------------------------------------------------------- synthetic clips


def _photo(name: str) -> np.ndarray:
    import skimage.data

    img = np.asarray(getattr(skimage.data, name)())
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3].astype(np.uint8))


def ken_burns_frames(
    photos: Sequence[str | np.ndarray] = DEFAULT_PHOTOS,
    *,
    size: tuple[int, int] = (256, 192),
    fps: float = 10.0,
    seconds_per_image: float = 1.6,
    fade_seconds: float = 0.4,
    zoom: tuple[float, float] = (1.0, 1.5),
    seed: int = 0,
) -> Iterator[np.ndarray]:
    """Frames (H, W, 3) uint8 of ``size`` = (W, H): a slow zoom and pan over each photo in turn.

    Each photo gets ``round(seconds_per_image * fps)`` frames; the window zooms from ``zoom[0]`` to
    ``zoom[1]`` towards a random point (``seed``), and the last ``fade_seconds`` cross-fade into the
    next photo's first frame. ``photos`` are skimage.data names or RGB arrays. Generated lazily.
    """
    from PIL import Image

    W, H = int(size[0]), int(size[1])
    n = max(1, round(seconds_per_image * fps))
    n_fade = min(n - 1, max(0, round(fade_seconds * fps)))
    rng = np.random.default_rng(seed)
    ims = [Image.fromarray(_photo(p) if isinstance(p, str) else np.asarray(p, dtype=np.uint8)) for p in photos]
    plans = []
    for im in ims:
        iw, ih = im.size
        cw = min(iw, ih * W / H)  # largest window of the output's aspect
        ch = cw * H / W
        target = rng.uniform(0.3, 0.7, 2)  # where the zoom ends (fraction of the free range)
        plans.append((iw, ih, cw, ch, target))

    def render(i: int, p: float) -> np.ndarray:
        iw, ih, cw, ch, target = plans[i]
        z = zoom[0] + (zoom[1] - zoom[0]) * p
        w, h = cw / z, ch / z
        cx0, cy0 = iw / 2, ih / 2
        cx1 = w / 2 + target[0] * (iw - w)
        cy1 = h / 2 + target[1] * (ih - h)
        cx, cy = cx0 + (cx1 - cx0) * p, cy0 + (cy1 - cy0) * p
        x0 = min(max(cx - w / 2, 0.0), iw - w)
        y0 = min(max(cy - h / 2, 0.0), ih - h)
        return np.asarray(ims[i].resize((W, H), Image.BILINEAR, box=(x0, y0, x0 + w, y0 + h)))

    for i in range(len(ims)):
        for t in range(n):
            frame = render(i, t / max(1, n - 1))
            if i + 1 < len(ims) and n_fade and t >= n - n_fade:
                a = (t - (n - n_fade) + 1) / (n_fade + 1)
                frame = ((1 - a) * frame + a * render(i + 1, 0.0)).round().astype(np.uint8)
            yield frame


def synthesize_clip(
    path: str | Path,
    photos: Sequence[str | np.ndarray] = DEFAULT_PHOTOS,
    *,
    size: tuple[int, int] = (256, 192),
    fps: float = 10.0,
    seconds_per_image: float = 1.6,
    fade_seconds: float = 0.4,
    zoom: tuple[float, float] = (1.0, 1.5),
    seed: int = 0,
    codec: str | None = None,
) -> VideoInfo:
    """Write a pan/zoom clip over skimage.data photos (see :func:`ken_burns_frames`) to ``path``."""
    with VideoWriter(path, fps, codec=codec) as w:
        for frame in ken_burns_frames(
            photos, size=size, fps=fps, seconds_per_image=seconds_per_image, fade_seconds=fade_seconds,
            zoom=zoom, seed=seed,
        ):
            w.write(frame)
    info = probe(path)
    info.frames = w.frames
    return info


# --------------------------------------------------------------------------- memory


def rss_bytes() -> int:
    """This process's resident set size now (Linux /proc; else psutil; else the lifetime peak)."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:  # pragma: no cover - neither /proc nor psutil
        import resource

        scale = 1 if sys.platform == "darwin" else 1024
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * scale


class PeakRSS:
    """Sample this process's RSS on a background thread every ``interval`` s; report the peak.

    ``with PeakRSS() as mem: ...`` then ``mem.start_mb``, ``mem.peak_mb`` and ``mem.growth_mb``
    (peak minus the RSS at entry). Spikes shorter than ``interval`` can be missed.
    """

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.start = self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRSS:
        self.start = self.peak = rss_bytes()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, rss_bytes())

    @property
    def start_mb(self) -> float:
        return self.start / 2**20

    @property
    def peak_mb(self) -> float:
        return self.peak / 2**20

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.start) / 2**20


# --------------------------------------------------------------------------- the model side


def load_model(name: str = "efficientnet_lite0", device: str | torch.device = "cpu"):
    """``efficientnet_lite0`` (embedded weights) or any torchvision classifier name (weights API)."""
    from camlib.models import load_efficientnet_lite0, load_torchvision

    if name in ("efficientnet_lite0", "lite0"):
        return load_efficientnet_lite0(device)
    return load_torchvision(name, device=device)


def frame_transform(model) -> Callable[[np.ndarray], Tensor]:
    """(B, H, W, 3) uint8 frames -> the network's (B, 3, h, w) float input, WITHOUT cropping.

    The map is overlaid on the whole frame, so the whole frame must be seen: torchvision's
    resize-and-centre-crop is replaced by a plain resize to the input size with its mean/std;
    other preprocessings (EfficientNet-Lite0 resizes without crop) are applied as they are.
    """
    pre = model.preprocess
    if hasattr(pre, "crop_size") and hasattr(pre, "mean"):
        h, w = model.input_size
        mean = torch.tensor(pre.mean).view(1, 3, 1, 1)
        std = torch.tensor(pre.std).view(1, 3, 1, 1)

        def tf(frames: np.ndarray) -> Tensor:
            x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255.0)
            x = F.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
            return (x - mean) / std

        return tf

    def tf_each(frames: np.ndarray) -> Tensor:
        return torch.stack([pre(torch.from_numpy(np.ascontiguousarray(f)).permute(2, 0, 1)) for f in frames])

    return tf_each


_JET: np.ndarray | None = None


def _jet_lut() -> np.ndarray:
    global _JET
    if _JET is None:
        import matplotlib

        _JET = (matplotlib.colormaps["jet"](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.float32)
    return _JET


def _font(height: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=max(10, height // 18))
    except (TypeError, OSError):  # Pillow without FreeType
        return ImageFont.load_default()


def _annotate(frame: np.ndarray, text: str, font) -> np.ndarray:
    from PIL import Image, ImageDraw

    im = Image.fromarray(frame)
    draw = ImageDraw.Draw(im)
    x0, y0, x1, y1 = draw.textbbox((4, 3), text, font=font)
    draw.rectangle((0, 0, x1 + 4, y1 + 3), fill=(0, 0, 0))
    draw.text((4, 3), text, fill=(255, 255, 255), font=font)
    return np.asarray(im)


@dataclass
class VideoCAMStats:
    """What :func:`process_video` did. ``records``: one dict per frame (index, time, top-1 class id
    and name, softmax score, and the map's peak position as fractions of the width and height)."""

    input: str
    output: str
    model: str
    frames: int
    seconds: float
    fps: float
    input_fps: float
    size: tuple[int, int]
    codec: str
    smooth: float
    batch_size: int
    rss_start_mb: float | None = None
    rss_peak_mb: float | None = None
    rss_growth_mb: float | None = None
    gif: str | None = None
    records: list[dict] = field(default_factory=list)

    def to_dict(self, records: bool = True) -> dict:
        d = asdict(self)
        if not records:
            d.pop("records")
        return d


def _batched(it: Iterator[np.ndarray], n: int) -> Iterator[list[np.ndarray]]:
    batch: list[np.ndarray] = []
    for x in it:
        batch.append(x)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


@torch.inference_mode()
def process_video(
    src: str | Path,
    dst: str | Path,
    model,
    *,
    smooth: float = 0.0,
    batch_size: int = 8,
    gif: str | Path | None = None,
    alpha: float = 0.45,
    max_frames: int | None = None,
    progress: bool = True,
    measure_memory: bool = False,
    codec: str | None = None,
    device: str | torch.device = "cpu",
) -> VideoCAMStats:
    """Overlay the CAM of the top-1 class, with its name and score, on every frame of ``src``.

    ``model`` is a :class:`camlib.models.ImageNetModel` (network, preprocessing, input size, class
    names). Frames stream through in batches of ``batch_size``; ``smooth`` in [0, 1) is the EMA factor
    of the features (module docstring). Writes ``dst`` (MP4) and, with ``gif``, a small GIF preview.
    ``measure_memory`` samples the process RSS during the run (:class:`PeakRSS`).
    """
    from tqdm.auto import tqdm

    if not 0.0 <= smooth < 1.0:
        raise ValueError(f"smooth must be in [0, 1), got {smooth}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    info = probe(src)  # clear errors before any work
    tf = frame_transform(model)
    net = model.model
    cam = CAM(net)
    fc = None
    lut = _jet_lut()
    font = _font(info.height)
    ema: Tensor | None = None
    records: list[dict] = []
    writer = VideoWriter(dst, info.fps, codec=codec)
    preview = GifPreview(gif, info.fps) if gif else None
    total = info.frames if info.frames > 0 else None
    if max_frames is not None and total is not None:
        total = min(total, max_frames)
    # Resolve the CAM head on one blank frame first: that call records every layer's output once,
    # a one-off cost that must not be mistaken for memory that grows with the video.
    cam(tf(np.zeros((1, info.height, info.width, 3), np.uint8)).to(device))
    mem = PeakRSS() if measure_memory else None
    t0 = time.perf_counter()
    n = 0
    try:
        if mem is not None:
            mem.__enter__()
        with tqdm(total=total, desc="video CAM", unit="frame", disable=not progress) as bar:
            for batch in _batched(iter_frames(src, max_frames=max_frames), batch_size):
                frames = np.stack(batch)
                x = tf(frames).to(device)
                out = cam(x)
                head = cam.head
                if fc is None:
                    layer = dict(net.named_modules())[head.fc_layer]
                    w = layer.weight.detach().float()
                    fc = (w[:, :, 0, 0] if w.ndim == 4 else w, None if layer.bias is None else layer.bias.detach().float())
                W, b = fc
                f = out.features.float()
                f = f.relu() if head.relu else f
                smoothed = torch.empty_like(f)
                for i in range(f.shape[0]):  # the EMA runs in frame order
                    ema = f[i] if ema is None or smooth == 0.0 else smooth * ema + (1.0 - smooth) * f[i]
                    smoothed[i] = ema
                pooled = smoothed.mean((2, 3)) if head.pool == "avg" else smoothed.amax((2, 3))
                if head.kind == "score_map":
                    cmaps = torch.einsum("bkhw,ck->bchw", smoothed, W) + (0 if b is None else b[None, :, None, None])
                    logits = cmaps.relu().mean((2, 3)) if head.pool == "avg" else cmaps.relu().amax((2, 3))
                else:
                    logits = F.linear(pooled, W, b)
                probs = logits.softmax(1)
                score, cls = probs.max(1)
                maps = torch.einsum("bkhw,bk->bhw", smoothed, W[cls])
                H, Wd = frames.shape[1:3]
                up = F.interpolate(maps[:, None], size=(H, Wd), mode="bilinear", align_corners=False)[:, 0]
                lo = up.flatten(1).amin(1)[:, None, None]
                hi = up.flatten(1).amax(1)[:, None, None]
                norm = ((up - lo) / (hi - lo).clamp_min(1e-12)).numpy()
                heat = lut[np.clip((norm * 255).astype(np.int64), 0, 255)]
                blended = ((1 - alpha) * frames.astype(np.float32) + alpha * heat).round().clip(0, 255).astype(np.uint8)
                for i in range(len(batch)):
                    c = int(cls[i])
                    name = model.classes[c] if c < len(model.classes) else str(c)
                    frame = _annotate(blended[i], f"{name} {float(score[i]):.2f}", font)
                    writer.write(frame)
                    if preview is not None:
                        preview.add(frame)
                    py, px = np.unravel_index(int(np.argmax(norm[i])), norm[i].shape)
                    records.append({
                        "frame": n, "time_s": n / info.fps, "class": c, "label": name,
                        "score": float(score[i]), "peak_x": (px + 0.5) / Wd, "peak_y": (py + 0.5) / H,
                    })
                    n += 1
                bar.update(len(batch))
    finally:
        writer.close()
        if mem is not None:
            mem.__exit__(None, None, None)
    seconds = time.perf_counter() - t0
    gif_path = preview.close() if preview is not None else None
    return VideoCAMStats(
        input=str(src),
        output=str(dst),
        model=getattr(model, "name", type(net).__name__),
        frames=n,
        seconds=seconds,
        fps=n / seconds if seconds > 0 else 0.0,
        input_fps=info.fps,
        size=tuple(writer.size) if writer.size else (info.height, info.width),
        codec=writer.codec,
        smooth=float(smooth),
        batch_size=int(batch_size),
        rss_start_mb=None if mem is None else mem.start_mb,
        rss_peak_mb=None if mem is None else mem.peak_mb,
        rss_growth_mb=None if mem is None else mem.growth_mb,
        gif=None if gif_path is None else str(gif_path),
        records=records,
    )


def measure_in_subprocess(
    src: str | Path,
    dst: str | Path,
    *,
    model: str = "efficientnet_lite0",
    smooth: float = 0.0,
    batch_size: int = 8,
    threads: int | None = None,
    timeout: float = 1800,
) -> dict:
    """Run the command line on ``src`` in a FRESH Python process and return its stats (no records).

    A fresh process per video makes peak-memory numbers comparable: nothing allocated by an earlier
    run (allocator caches, model copies) is counted or hidden. Raises RuntimeError with the
    process's error output when it fails.
    """
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        stats = Path(tmp) / "stats.json"
        cmd = [sys.executable, "-m", "camlib.paper.video", str(src), str(dst), "--model", model, "--smooth", str(smooth),
               "--batch", str(batch_size), "--stats", str(stats), "--no-progress"]
        if threads:
            cmd += ["--threads", str(threads)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
        d = json.loads(stats.read_text())
    d.pop("records", None)
    return d


# --------------------------------------------------------------------------- figures


def label_switches(records: Sequence[dict]) -> int:
    """How many times the top-1 class changes from one frame to the next."""
    return sum(a["class"] != b["class"] for a, b in zip(records, records[1:], strict=False))


def plot_strip(video: str | Path, records: Sequence[dict], n: int = 8):
    """``n`` evenly spaced frames of a processed video in a row, titled with time, label and score."""
    import matplotlib.pyplot as plt

    from camlib.core.viz import FIG_DPI

    total = len(records)
    idx = sorted({int(round(i)) for i in np.linspace(0, total - 1, min(n, total))})
    frames = read_frames(video, idx)
    fig, axes = plt.subplots(1, len(idx), figsize=(1.9 * len(idx), 1.9), dpi=FIG_DPI, squeeze=False)
    for ax, i in zip(axes[0], idx, strict=True):
        ax.imshow(frames[i])
        r = records[i]
        ax.set_title(f"t={r['time_s']:.1f}s\n{r['label'][:18]} {r['score']:.2f}", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def plot_timeline(records: Sequence[dict], other: Sequence[dict] | None = None, labels=("smoothed", "raw")):
    """Top-1 score over time coloured by class (top), and where the map peaks (bottom).

    ``other``: a second run of the same video (e.g. without smoothing) drawn as a thin grey line.
    """
    import matplotlib.pyplot as plt

    from camlib.core.viz import FIG_DPI

    t = np.array([r["time_s"] for r in records])
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 4.6), dpi=FIG_DPI, sharex=True)
    if other is not None:
        ax1.plot([r["time_s"] for r in other], [r["score"] for r in other], color="0.6", lw=0.8,
                 label=f"{labels[1]} (any class)")
    names = list(dict.fromkeys(r["label"] for r in records))
    cmap = plt.get_cmap("tab10")
    for j, name in enumerate(names):
        sel = np.array([r["label"] == name for r in records])
        ax1.scatter(t[sel], np.array([r["score"] for r in records])[sel], s=10, color=cmap(j % 10), label=name)
    ax1.set_ylabel("top-1 softmax score")
    ax1.set_ylim(0, 1.02)
    ax1.legend(fontsize=7, ncol=3, loc="lower left", bbox_to_anchor=(0, 1.0), frameon=False)
    ax2.plot(t, [r["peak_x"] for r in records], label="peak x (fraction of width)")
    ax2.plot(t, [r["peak_y"] for r in records], label="peak y (fraction of height)")
    ax2.set_ylim(0, 1)
    ax2.set_xlabel("time (s)")
    ax2.set_ylabel("CAM peak")
    ax2.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m camlib.video",
        description="Overlay the class activation map of the top-1 class, with its name and score, on "
        "every frame of a video (streamed; memory does not grow with the video's length).",
    )
    p.add_argument("input", help="input video file (anything FFmpeg reads: mp4, mov, avi, webm, ...)")
    p.add_argument("output", help="output MP4 file (H.264 when available, else MPEG-4)")
    p.add_argument("--model", default="efficientnet_lite0",
                   help="efficientnet_lite0 (embedded, default) or a torchvision model name, e.g. resnet50")
    p.add_argument("--smooth", type=float, default=0.0,
                   help="EMA factor in [0, 1) for the maps over time (0 = none; 0.5 = moderate)")
    p.add_argument("--batch", type=int, default=8, help="frames per forward pass (default 8)")
    p.add_argument("--gif", default=None, help="also write a small GIF preview here")
    p.add_argument("--alpha", type=float, default=0.45, help="heat-map opacity (default 0.45)")
    p.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--stats", default=None,
                   help="write a JSON summary (frames, fps, peak RSS, per-frame top-1) to this file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        probe(args.input)  # fail fast, before loading a model
        model = load_model(args.model, args.device)
        stats = process_video(
            args.input, args.output, model, smooth=args.smooth, batch_size=args.batch, gif=args.gif,
            alpha=args.alpha, max_frames=args.max_frames, progress=not args.no_progress,
            measure_memory=True, device=args.device,
        )
    except (FileNotFoundError, VideoError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.stats:
        Path(args.stats).parent.mkdir(parents=True, exist_ok=True)
        Path(args.stats).write_text(json.dumps(stats.to_dict(), indent=1))
    print(
        f"{stats.frames} frames in {stats.seconds:.1f} s ({stats.fps:.1f} frames/s), "
        f"peak RSS growth {stats.rss_growth_mb:.0f} MiB -> {stats.output}"
        + (f" (+ {stats.gif})" if stats.gif else ""),
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
