"""CAM on video: the class activation map of the top-1 class, frame by frame (paper, section 4.2).

Everything streams: frames are decoded one by one (:mod:`camlib.datasets.video`), grouped in batches of
``batch_size`` for the model, overlaid and labelled, encoded and dropped (:mod:`camlib.core.video_out`),
so memory does not grow with the video's length (the GIF preview keeps at most ``max_frames`` small
frames, the per-frame record a few numbers a frame).

The maps are CAM's own: :class:`FrameCAMs` takes the features and the classifier from
:class:`camlib.core.cam.CAM` and computes scores and maps with :func:`camlib.core.cam.logits_from_features`
and :func:`camlib.core.cam.maps_from_features`, so a 1x1-conv classifier (SqueezeNet) gets its map with
bias and ReLU, exactly as CAM gives it.

Temporal smoothing (``smooth`` = s in [0, 1)) is an exponential moving average of the CAM FEATURES
``f_k(x, y)`` over frames: ``e_t = s e_{t-1} + (1 - s) f_t``. CAM is linear in the features, so this
smooths the map of EVERY class and (for average pooling) every logit at once:
``M_c(e_t) = s M_c(e_{t-1}) + (1 - s) M_c(f_t)``. The top-1 class, its score (softmax of the
smoothed logits) and its map are then read from ``e_t``. ``smooth=0`` is plain per-frame CAM.

Command line::

    python -m camlib.video in.mp4 out.mp4 --model efficientnet_lite0 [--smooth 0.5] [--batch 8] \
        [--gif out.gif] [--stats stats.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from camlib.core.cam import (
    CAM,
    DISPLAY_OPTIONS,
    fc_weights,
    logits_from_features,
    maps_from_features,
    postprocess,
)
from camlib.core.io import atomic_write_text, check_output_path
from camlib.core.video_out import (
    GifPreview,
    PeakRSS,
    VideoError,
    VideoWriter,
    heat_overlay,
    label_font,
    label_frame,
)
from camlib.datasets.roots import DataSource
from camlib.datasets.video import VideoInfo, iter_frames, probe, read_frames

__all__ = [
    "MAX_FRAME_PIXELS",
    "MEMORY_BOUND",
    "ClipSource",
    "FrameCAMs",
    "VideoCAMStats",
    "check_video_args",
    "frame_transform",
    "label_segments",
    "label_switches",
    "load_model",
    "main",
    "measure_in_subprocess",
    "memory_growth",
    "memory_in_run",
    "plot_strip",
    "plot_timeline",
    "probe_frames",
    "process_video",
    "quick_clip",
    "video_metrics",
]

#: the long clip's peak RSS may be at most this multiple of the short clip's (notebook 09)
MEMORY_BOUND = 1.5

#: the largest frame (width x height) processed: DCI 4K (4096 x 2160) passes, 8K is refused with the
#: command that downscales it (a batch of 8 such frames as float input is already ~1.6 GB)
MAX_FRAME_PIXELS = 4096 * 4096


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


@dataclass
class VideoCAMStats:
    """What :func:`process_video` did. ``records``: one dict per frame (index, time, top-1 class id
    and name, softmax score, and the map's peak position as fractions of the width and height);
    ``raw_records``: the same without smoothing, from the same forward passes (``raw_records=True``);
    ``rss_trace``: with ``measure_memory``, after each batch the frames done, the seconds since the
    start and the peak RSS so far (MiB), for :func:`memory_in_run`."""

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
    raw_records: list[dict] | None = None
    rss_trace: list[dict] = field(default_factory=list)

    def to_dict(self, records: bool = True) -> dict:
        d = asdict(self)
        if not records:
            d.pop("records")
            d.pop("raw_records")
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


class FrameCAMs:
    """The top-1 CAM of each frame of a stream, on features smoothed over frames (module docstring).

    Call it on consecutive batches ``x`` (B, 3, h, w) of network inputs, in frame order; it returns
    ``(classes (B,), scores (B,), maps (B, h', w'))``: the top-1 class of the smoothed scores, its
    softmax probability and its raw map at feature resolution. With ``smooth=0`` the maps are exactly
    ``CAM(net)(x, targets=classes).maps`` (for either head kind) and the classes CAM's top-1.

    ``keep_raw=True`` also keeps, in ``raw``, the same triple for the UNSMOOTHED features of the last
    batch: smoothing runs after the network, so the ``smooth=0`` answer comes from the same forward
    pass, identical to what ``FrameCAMs(net, 0.0)`` returns on the same batches.
    """

    def __init__(self, net: nn.Module, smooth: float = 0.0, *, keep_raw: bool = False) -> None:
        if not 0.0 <= smooth < 1.0:
            raise ValueError(f"smooth must be in [0, 1), got {smooth}")
        self.cam = CAM(net)
        self.smooth = float(smooth)
        self.ema: Tensor | None = None
        self._fc: tuple[Tensor, Tensor | None] | None = None
        self.keep_raw = keep_raw
        self.raw: tuple[Tensor, Tensor, Tensor] | None = None

    def resolve(self, x: Tensor) -> None:
        """Find the CAM head on ``x[:1]`` (a one-off pass that records every layer) and read the
        classifier, without touching the running average."""
        out = self.cam(x[:1])
        w, b = fc_weights(self.cam.model, out.head)
        self._fc = (w.detach().float(), None if b is None else b.detach().float())

    @torch.inference_mode()
    def __call__(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if self._fc is None:
            self.resolve(x)
        out = self.cam(x)
        head = out.head
        f = out.features.float()
        f = f.relu() if head.relu else f  # the EMA runs on a(f), what the head pools
        smoothed = torch.empty_like(f)
        for i in range(f.shape[0]):  # the EMA runs in frame order
            self.ema = (
                f[i]
                if self.ema is None or self.smooth == 0.0
                else self.smooth * self.ema + (1.0 - self.smooth) * f[i]
            )
            smoothed[i] = self.ema
        if self.keep_raw:
            self.raw = self._top1(f, head)
        return self._top1(smoothed, head)

    def _top1(self, f: Tensor, head) -> tuple[Tensor, Tensor, Tensor]:
        W, b = self._fc
        logits = logits_from_features(f, W, b, pool=head.pool, kind=head.kind)
        score, cls = logits.softmax(1).max(1)
        maps = maps_from_features(f, W, b, cls[:, None], head.kind)[:, 0]
        return cls, score, maps


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
    raw_records: bool = False,
    codec: str | None = None,
    device: str | torch.device = "cpu",
) -> VideoCAMStats:
    """Overlay the CAM of the top-1 class, with its name and score, on every frame of ``src``.

    ``model`` is a :class:`camlib.models.ImageNetModel` (network, preprocessing, input size, class
    names). Frames stream through in batches of ``batch_size``; ``smooth`` in [0, 1) is the EMA factor
    of the features (module docstring, :class:`FrameCAMs`). Each map is upsampled bilinearly to the
    frame and min-max normalised (:data:`camlib.core.cam.DISPLAY_OPTIONS`), then blended in jet
    (:func:`camlib.core.video_out.heat_overlay`). Writes ``dst`` (MP4) and, with ``gif``, a small GIF
    preview. ``measure_memory`` samples the process RSS during the run (:class:`PeakRSS`) and keeps the
    peak so far after each batch (``rss_trace``). ``raw_records=True`` also records every frame's top-1
    WITHOUT smoothing (``raw_records``), read from the same forward passes (:class:`FrameCAMs`
    ``keep_raw``): the records a second run with ``smooth=0`` would give, without running the network twice.

    Before any work: ``dst`` and ``gif`` must be writable and must not be ``src`` (after resolving
    links), ``max_frames`` must be >= 1 and the frame at most :data:`MAX_FRAME_PIXELS`. The MP4 and the
    GIF are written to temporary files and renamed on success, so a failing or interrupted run leaves
    no truncated video and any earlier output intact.
    """
    from tqdm.auto import tqdm

    check_video_args(src, dst, gif=gif, batch_size=batch_size, max_frames=max_frames)
    cams = FrameCAMs(model.model, smooth, keep_raw=raw_records)  # checks smooth
    info = probe_frames(src)  # clear errors before any work
    tf = frame_transform(model)
    font = label_font(info.height)
    records: list[dict] = []
    raw: list[dict] | None = [] if raw_records else None
    trace: list[dict] = []
    writer = VideoWriter(dst, info.fps, codec=codec)
    preview = GifPreview(gif, info.fps) if gif else None
    total = info.frames if info.frames > 0 else None
    if max_frames is not None and total is not None:
        total = min(total, max_frames)
    # Resolve the CAM head on one blank frame first: that call records every layer's output once,
    # a one-off cost that must not be mistaken for memory that grows with the video.
    cams.resolve(tf(np.zeros((1, info.height, info.width, 3), np.uint8)).to(device))
    mem = PeakRSS() if measure_memory else None
    t0 = time.perf_counter()
    n = 0
    try:
        if mem is not None:
            mem.__enter__()
        with tqdm(total=total, desc="video CAM", unit="frame", disable=not progress) as bar:
            for batch in _batched(iter_frames(src, max_frames=max_frames), batch_size):
                frames = np.stack(batch)
                cls, score, maps = cams(tf(frames).to(device))
                norm = _display_maps(maps, frames.shape[1:3])
                blended = heat_overlay(frames, norm, alpha)
                new = _frame_records(n, info.fps, cls, score, norm, model.classes)
                for i, r in enumerate(new):
                    frame = label_frame(blended[i], f"{r['label']} {r['score']:.2f}", font)
                    writer.write(frame)
                    if preview is not None:
                        preview.add(frame)
                records += new
                if raw is not None:
                    rc, rs, rm = cams.raw
                    raw += _frame_records(
                        n, info.fps, rc, rs, _display_maps(rm, frames.shape[1:3]), model.classes
                    )
                n += len(batch)
                if mem is not None:
                    trace.append(
                        {"frames": n, "seconds": time.perf_counter() - t0, "rss_peak_mb": mem.mark() / 2**20}
                    )
                bar.update(len(batch))
    except BaseException:
        writer.abort()  # no truncated MP4; an earlier dst stays as it was
        raise
    else:
        writer.close()
    finally:
        if mem is not None:
            mem.__exit__(None, None, None)
    seconds = time.perf_counter() - t0
    gif_path = preview.close() if preview is not None else None
    return VideoCAMStats(
        input=str(src),
        output=str(dst),
        model=getattr(model, "name", type(model.model).__name__),
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
        raw_records=raw,
        rss_trace=trace,
    )


def _display_maps(maps: Tensor, size: tuple[int, int]) -> np.ndarray:
    """Raw maps (B, h, w) -> the shown maps (B, H, W): upsampled to the frame and min-max normalised."""
    return postprocess(maps[:, None].cpu(), DISPLAY_OPTIONS, original_size=tuple(size))[:, 0].numpy()


def _frame_records(n0: int, fps: float, cls: Tensor, score: Tensor, norm: np.ndarray, names) -> list[dict]:
    """One record per frame of a batch starting at frame ``n0``: time, top-1 class and name, its score and
    the shown map's peak as fractions of the frame's width and height."""
    H, Wd = norm.shape[1:3]
    out = []
    for i in range(len(cls)):
        c = int(cls[i])
        py, px = np.unravel_index(int(np.argmax(norm[i])), norm[i].shape)
        out.append(
            {
                "frame": n0 + i,
                "time_s": (n0 + i) / fps,
                "class": c,
                "label": names[c] if c < len(names) else str(c),
                "score": float(score[i]),
                "peak_x": (px + 0.5) / Wd,
                "peak_y": (py + 0.5) / H,
            }
        )
    return out


def check_video_args(
    src, dst, *, gif=None, stats=None, batch_size: int = 1, max_frames: int | None = None
) -> None:
    """The checks :func:`process_video` and the command line make before any work (ValueError naming
    the problem): outputs writable and none of them the input, ``batch_size`` and ``max_frames`` >= 1."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1 (or omitted for every frame), got {max_frames}")
    check_output_path(dst, inputs=[src], what="output video")
    if gif is not None:
        check_output_path(gif, inputs=[src, dst], what="GIF preview")
    if stats is not None:
        check_output_path(stats, inputs=[src, dst, gif], what="stats file")


def probe_frames(src) -> VideoInfo:
    """:func:`camlib.datasets.video.probe`, refusing frames larger than :data:`MAX_FRAME_PIXELS`."""
    info = probe(src)
    if info.width * info.height > MAX_FRAME_PIXELS:
        raise ValueError(
            f"{src}: frames of {info.width} x {info.height} pixels are larger than this command handles "
            f"({MAX_FRAME_PIXELS:,} pixels, e.g. 4096 x 4096); downscale first, e.g. "
            f"ffmpeg -i {src} -vf scale=1920:-2 smaller.mp4"
        )
    return info


def measure_in_subprocess(
    src: str | Path,
    dst: str | Path,
    *,
    model: str = "efficientnet_lite0",
    smooth: float = 0.0,
    batch_size: int = 8,
    threads: int | None = None,
    timeout: float = 1800,
    max_frames: int | None = None,
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
        cmd = [
            sys.executable,
            "-m",
            "camlib.paper.video",
            str(src),
            str(dst),
            "--model",
            model,
            "--smooth",
            str(smooth),
            "--batch",
            str(batch_size),
            "--stats",
            str(stats),
            "--no-progress",
        ]
        if threads:
            cmd += ["--threads", str(threads)]
        if max_frames is not None:
            cmd += ["--max-frames", str(max_frames)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
        d = json.loads(stats.read_text())
    d.pop("records", None)
    return d


def memory_growth(
    short: tuple[str | Path, str | Path] | tuple[str | Path, str | Path, int | None],
    long: tuple[str | Path, str | Path] | tuple[str | Path, str | Path, int | None],
    *,
    model: str = "efficientnet_lite0",
    smooth: float = 0.0,
    batch_size: int = 8,
    threads: int | None = None,
) -> dict:
    """Is the processing streamed? Each ``(src, dst)`` pair runs in a fresh process
    (:func:`measure_in_subprocess`); the long video's peak RSS is compared with the short one's. A third
    item ``max_frames`` stops that run after so many frames (e.g. the first 25 frames of a clip as "short").

    Returns ``{"short": stats, "long": stats, "frames_ratio", "peak_rss_ratio" (long / short),
    "rss_growth_ratio", "peak_within_1p5x" (peak_rss_ratio <= MEMORY_BOUND)}``.
    """
    runs = {
        name: measure_in_subprocess(
            pair[0],
            pair[1],
            model=model,
            smooth=smooth,
            batch_size=batch_size,
            threads=threads,
            max_frames=pair[2] if len(pair) > 2 else None,
        )
        for name, pair in (("short", short), ("long", long))
    }
    return _memory_summary(runs["short"], runs["long"], "two fresh processes (the command line with --stats)")


def memory_in_run(stats: VideoCAMStats, short_frames: int) -> dict:
    """Is the processing streamed? Read from ONE run's ``rss_trace`` (``measure_memory=True``): the peak RSS
    after the last batch that ends within the first ``short_frames`` frames (the first batch if none does:
    "short") against the peak after all of them ("long"); growth is measured from the RSS when processing
    started (model loaded, head resolved).
    Same keys as :func:`memory_growth`; a streaming run's peak does not grow with the frames processed."""
    if not stats.rss_trace:
        raise ValueError("the run has no rss_trace: run process_video with measure_memory=True")
    first = ([t for t in stats.rss_trace if t["frames"] <= short_frames] or stats.rss_trace[:1])[-1]
    last = stats.rss_trace[-1]

    def at(t: dict) -> dict:
        return {
            "frames": t["frames"],
            "seconds": t["seconds"],
            "fps": t["frames"] / t["seconds"] if t["seconds"] > 0 else 0.0,
            "rss_start_mb": stats.rss_start_mb,
            "rss_peak_mb": t["rss_peak_mb"],
            "rss_growth_mb": t["rss_peak_mb"] - stats.rss_start_mb,
        }

    return _memory_summary(
        at(first), at(last), "one run: peak RSS after the first frames vs after all of them"
    )


def _memory_summary(short: dict, long: dict, how: str) -> dict:
    ratio_peak = long["rss_peak_mb"] / short["rss_peak_mb"]
    return {
        "short": short,
        "long": long,
        "frames_ratio": long["frames"] / short["frames"],
        "peak_rss_ratio": ratio_peak,
        "rss_growth_ratio": long["rss_growth_mb"] / max(short["rss_growth_mb"], 1e-9),
        "peak_within_1p5x": ratio_peak <= MEMORY_BOUND,
        "how": how,
    }


@dataclass
class ClipSource:
    """The quick profile's input video: ``path``, its ``info``, ``real`` (a real clip was found, else the
    synthetic one was written), the results file's ``data`` row and the ``line`` the notebook prints first."""

    path: Path
    info: VideoInfo
    real: bool
    data: DataSource
    line: str


def quick_clip(
    out_dir: str | Path,
    video_root: str | Path | None = None,
    *,
    name: str = "bikes.mp4",
    clip_kw: dict | None = None,
) -> ClipSource:
    """The real clip when :func:`camlib.datasets.roots.resolve_root` finds the ``video`` set (``video_root``,
    then ``$VIDEO_ROOT``, ``data/video``, ``../shared/data/video``): ``name`` in it (else its first ``.mp4``);
    otherwise a clip synthesised from skimage photos into ``out_dir`` (:func:`camlib.datasets.video.synthesize_clip`
    with ``clip_kw``)."""
    from camlib.datasets.roots import resolve_root
    from camlib.datasets.video import DEFAULT_PHOTOS, synthesize_clip

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    found = resolve_root("video", video_root)
    if found:
        clips = sorted(found.path.glob("*.mp4"))
        path = found.path / name if (found.path / name).is_file() else (clips[0] if clips else None)
        if path is None:
            raise FileNotFoundError(
                f"{found.path} holds no .mp4 clip; put {name} there or unset {found.kind}"
            )
        info = probe(path)
        row = DataSource(path.name, found.kind, int(info.frames), f"{found.info.caveat} (n_images = frames)")
        line = (
            f"data: real clip {path.name} ({found.kind}: {path}): {info.width} x {info.height}, {info.fps:g} "
            f"frames/s, {info.frames} frames"
        )
        return ClipSource(path, info, True, row, line)
    kw = {"size": (256, 192), "fps": 10.0, "seconds_per_image": 1.6, "fade_seconds": 0.4, **(clip_kw or {})}
    path = out_dir / "09_quick_clip.mp4"
    info = synthesize_clip(path, DEFAULT_PHOTOS, **kw)
    row = DataSource(
        "synthetic clip (skimage photos)",
        "procedural",
        int(info.frames),
        "a pan and zoom over three still photos, not a real video (n_images = frames)",
    )
    line = (
        f"data: synthetic clip ({info.frames} frames from {', '.join(DEFAULT_PHOTOS)}): no real clip found. "
        f"For the real one: {found.fetch}"
    )
    return ClipSource(path, info, False, row, line)


def label_segments(records: Sequence[dict]) -> list[tuple[str, float, float]]:
    """Runs of frames with the same top-1 label: ``[(label, first time_s, last time_s), ...]`` in order."""
    segments: list[list] = []
    for r in records:
        if not segments or segments[-1][0] != r["label"]:
            segments.append([r["label"], r["time_s"], r["time_s"]])
        segments[-1][2] = r["time_s"]
    return [(name, t0, t1) for name, t0, t1 in segments]


def video_metrics(stats: VideoCAMStats, unsmoothed: Sequence[dict] | VideoCAMStats | None = None) -> dict:
    """The numbers notebook 09 reports for one run (and, when given, the top-1 switches of the same
    video without smoothing: its records, or a run): frames, timing, size, codec, memory, label switches
    and the label sequence."""
    if isinstance(unsmoothed, VideoCAMStats):
        unsmoothed = unsmoothed.records
    d = {
        "frames": stats.frames,
        "seconds": stats.seconds,
        "fps": stats.fps,
        "input_fps": stats.input_fps,
        "size": list(stats.size),
        "codec": stats.codec,
        "rss_peak_mb": stats.rss_peak_mb,
        "rss_growth_mb": stats.rss_growth_mb,
        "label_switches": label_switches(stats.records),
        "labels": [s[0] for s in label_segments(stats.records)],
    }
    if unsmoothed is not None:
        d["label_switches_unsmoothed"] = label_switches(unsmoothed)
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
        ax1.plot(
            [r["time_s"] for r in other],
            [r["score"] for r in other],
            color="0.6",
            lw=0.8,
            label=f"{labels[1]} (any class)",
        )
    names = list(dict.fromkeys(r["label"] for r in records))
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")  # distinct colours up to 20 classes
    for j, name in enumerate(names):
        sel = np.array([r["label"] == name for r in records])
        ax1.scatter(
            t[sel], np.array([r["score"] for r in records])[sel], s=10, color=cmap(j % cmap.N), label=name
        )
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
    p.add_argument(
        "--model",
        default="efficientnet_lite0",
        help="efficientnet_lite0 (embedded, default) or a torchvision model name, e.g. resnet50",
    )
    p.add_argument(
        "--smooth",
        type=float,
        default=0.0,
        help="EMA factor in [0, 1) for the maps over time (0 = none; 0.5 = moderate)",
    )
    p.add_argument("--batch", type=int, default=8, help="frames per forward pass (default 8)")
    p.add_argument("--gif", default=None, help="also write a small GIF preview here")
    p.add_argument("--alpha", type=float, default=0.45, help="heat-map opacity (default 0.45)")
    p.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument(
        "--stats",
        default=None,
        help="write a JSON summary (frames, fps, peak RSS, per-frame top-1) to this file",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:  # fail fast, before loading a model: input readable, outputs writable, arguments in range
        check_video_args(
            args.input,
            args.output,
            gif=args.gif,
            stats=args.stats,
            batch_size=args.batch,
            max_frames=args.max_frames,
        )
        probe_frames(args.input)
        model = load_model(args.model, args.device)
        stats = process_video(
            args.input,
            args.output,
            model,
            smooth=args.smooth,
            batch_size=args.batch,
            gif=args.gif,
            alpha=args.alpha,
            max_frames=args.max_frames,
            progress=not args.no_progress,
            measure_memory=True,
            device=args.device,
        )
    except (FileNotFoundError, VideoError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.stats:
        atomic_write_text(args.stats, json.dumps(stats.to_dict(), indent=1))
    print(
        f"{stats.frames} frames in {stats.seconds:.1f} s ({stats.fps:.1f} frames/s), "
        f"peak RSS growth {stats.rss_growth_mb:.0f} MiB -> {stats.output}"
        + (f" (+ {stats.gif})" if stats.gif else ""),
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
