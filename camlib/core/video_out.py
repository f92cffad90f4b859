"""Writing video and what goes on its frames: encoders, an MP4 writer, a bounded GIF preview, the heat
overlay and the label of each frame, and a meter of this process's memory while it streams.

It sits in ``camlib.core`` (not ``camlib.tools``) because the data layer needs it too:
:func:`camlib.datasets.video.synthesize_clip` writes its clip with :class:`VideoWriter`, and the data
layer may import nothing above ``camlib.core``. :mod:`camlib.paper.video` (CAM over frames) uses all of it.

Frames are (H, W, 3) uint8 RGB arrays throughout. Encoding is PyAV (FFmpeg): H.264 when this build has
it, else MPEG-4 part 2 (:func:`pick_codec`).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from camlib.core.io import atomic_path

__all__ = [
    "GifPreview",
    "PeakRSS",
    "VideoError",
    "VideoWriter",
    "heat_overlay",
    "label_font",
    "label_frame",
    "pick_codec",
    "rss_bytes",
]


class VideoError(ValueError):
    """A video that cannot be opened or decoded (corrupt, truncated, not a video, no video stream)."""


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

    The frames go to a temporary file beside ``path`` (:func:`camlib.core.io.atomic_path`); only
    :meth:`close` (or leaving the ``with`` block normally) renames it onto ``path``. :meth:`abort`
    (or an exception, Ctrl-C included, inside the ``with`` block) deletes it: an interrupted or failing
    run leaves no truncated MP4 and any earlier ``path`` exactly as it was.
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
        self._atomic = atomic_path(self.path)
        self.tmp_path = self._atomic.__enter__()
        try:
            self._container = av.open(str(self.tmp_path), mode="w")  # format from the suffix, kept last
        except BaseException as exc:
            self._atomic.__exit__(type(exc), exc, exc.__traceback__)
            raise
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
        """Flush the encoder and move the finished file onto ``path`` (nothing when already closed)."""
        if self._container is None:
            return
        try:
            if self._stream is not None:
                for packet in self._stream.encode(None):
                    self._container.mux(packet)
            self._container.close()
        except BaseException as exc:
            self._discard(exc)
            raise
        self._container = None
        self._atomic.__exit__(None, None, None)

    def abort(self) -> None:
        """Stop without writing ``path``: the temporary file is deleted, an earlier ``path`` is kept."""
        if self._container is not None:
            self._discard(RuntimeError("video writing aborted"))

    def _discard(self, exc: BaseException) -> None:
        try:
            self._container.close()
        except Exception:
            pass
        self._container = None
        try:
            self._atomic.__exit__(type(exc), exc, exc.__traceback__)  # deletes the temporary file
        except BaseException as raised:
            if raised is not exc:
                raise

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._discard(exc)


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
        duration = max(20, round(1000.0 * self.stride / self.fps))
        with atomic_path(self.path) as tmp:  # never a half-written GIF over an earlier one
            self.frames[0].save(
                tmp,
                format="GIF",
                save_all=True,
                append_images=self.frames[1:],
                duration=duration,
                loop=0,
                optimize=False,
            )
        self.frames = []
        return self.path


# --------------------------------------------------------------------------- frame annotation


_JET: np.ndarray | None = None


def _jet_lut() -> np.ndarray:
    global _JET
    if _JET is None:
        import matplotlib

        _JET = (matplotlib.colormaps["jet"](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.float32)
    return _JET


def heat_overlay(frames: np.ndarray, maps, alpha: float = 0.45) -> np.ndarray:
    """Blend maps over frames: ``round((1 - alpha) * frame + alpha * jet(map))`` as uint8.

    ``frames`` (B, H, W, 3) uint8; ``maps`` (B, H, W) in [0, 1] at the frames' size (e.g. min-max
    normalised CAMs, :data:`camlib.core.cam.DISPLAY_OPTIONS`), looked up in a 256-entry jet table.
    """
    m = np.asarray(maps, dtype=np.float32)
    if m.shape != frames.shape[:3]:
        raise ValueError(f"maps {m.shape} do not match frames {frames.shape[:3]}; upsample the maps first")
    heat = _jet_lut()[np.clip((m * 255).astype(np.int64), 0, 255)]
    return ((1 - alpha) * frames.astype(np.float32) + alpha * heat).round().clip(0, 255).astype(np.uint8)


def label_font(height: int):
    """Pillow's default font at a size readable on a frame ``height`` pixels high."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=max(10, height // 18))
    except (TypeError, OSError):  # Pillow without FreeType
        return ImageFont.load_default()


def label_frame(frame: np.ndarray, text: str, font) -> np.ndarray:
    """``frame`` with ``text`` in white on a black box in its top-left corner (a new array)."""
    from PIL import Image, ImageDraw

    im = Image.fromarray(frame)
    draw = ImageDraw.Draw(im)
    x0, y0, x1, y1 = draw.textbbox((4, 3), text, font=font)
    draw.rectangle((0, 0, x1 + 4, y1 + 3), fill=(0, 0, 0))
    draw.text((4, 3), text, fill=(255, 255, 255), font=font)
    return np.asarray(im)


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

    def mark(self) -> int:
        """The peak so far (bytes), including the RSS right now (call it between units of work)."""
        self.peak = max(self.peak, rss_bytes())
        return self.peak

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
