"""Video as data: probing, decoding frame by frame (PyAV), and a synthetic clip made from photos.

Frames are decoded one at a time as (H, W, 3) uint8 RGB arrays, so nothing here holds a whole video.
:func:`synthesize_clip` makes a short pan-and-zoom clip over ``skimage.data`` photos (an astronaut, a
cup of coffee, a cat) so that everything video runs without any download; it is written with
:class:`camlib.core.video_out.VideoWriter`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from camlib.core.video_out import VideoError, VideoWriter

__all__ = [
    "DEFAULT_PHOTOS",
    "VideoError",
    "VideoInfo",
    "count_frames",
    "iter_frames",
    "ken_burns_frames",
    "probe",
    "read_frames",
    "synthesize_clip",
]

DEFAULT_PHOTOS = ("astronaut", "coffee", "chelsea")


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
    """Decode a video frame by frame as (H, W, 3) uint8 RGB arrays; one frame in memory at a time.

    ``max_frames`` (>= 1) stops after so many frames; 0 or less is a ValueError, not one frame."""
    import av

    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1 (or None for every frame), got {max_frames}")
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
            raise VideoError(
                f"{path}: decoding failed after {n} frames ({exc}); the file is corrupt"
            ) from exc
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


# --------------------------------------------------------------------------- synthetic clips


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

    from camlib.datasets.photos import load_photo  # skimage.data photos, the data layer's own

    W, H = int(size[0]), int(size[1])
    n = max(1, round(seconds_per_image * fps))
    n_fade = min(n - 1, max(0, round(fade_seconds * fps)))
    rng = np.random.default_rng(seed)
    ims = [
        Image.fromarray(load_photo(p) if isinstance(p, str) else np.asarray(p, dtype=np.uint8))
        for p in photos
    ]
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
            photos,
            size=size,
            fps=fps,
            seconds_per_image=seconds_per_image,
            fade_seconds=fade_seconds,
            zoom=zoom,
            seed=seed,
        ):
            w.write(frame)
    info = probe(path)
    info.frames = w.frames
    return info
