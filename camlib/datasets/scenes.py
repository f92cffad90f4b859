"""Procedural SCENES made of annotated objects, with scene-specific object statistics (paper section 4.2).

The stand-in for the SUN images of the paper's "discovering informative objects in the scenes"
(Figure 9). A scene category is defined by which objects it tends to contain: every image of scene
``s`` holds object type ``o`` with probability :data:`PRESENCE` ``[s, o]``, independently, at most
once. Because these statistics are known, so is the answer the paper reads off its CAMs:

- the COMMON objects (:data:`COMMON`: ``sky`` and ``ground`` in every image, ``cloud`` and ``rock``
  in most) have the same rate in every scene: frequent, but they say nothing about the scene (the
  paper's "wall");
- each scene has three SIGNATURE objects (:data:`SIGNATURE`, e.g. ``street``: house, car, pole) seen
  in 90 / 80 / 70% of its images and in :data:`OFF_RATE` (8%) of the others' images.

The ground-truth informativeness of object ``o`` for scene ``s`` is (:func:`informativeness`)

    g(o, s) = P(o | s) - mean_{s' != s} P(o | s'),

so the signature objects are the informative ones and the common objects score 0. Ranking objects
by plain frequency ``P(o | s)`` puts ``sky`` and ``ground`` first; a ranking that finds the objects a
scene classifier relies on should put the signature objects first.

Drawing: a sky (vertical colour gradient) above a horizon at 35-55% of the height, a textured ground
below; objects are the procedural classes of :mod:`camlib.datasets.procedural` (house, tree, car,
flower, snowman, mushroom), the bird of :mod:`camlib.datasets.fine_grained` and a few more drawn here
(pole, snowflake, tent, ball, crate, cloud, rock). Colours come from the shared palette at random
(they do not identify an object); shapes do. Sky objects (cloud, bird, snowflake) float above the
horizon, the others stand on the ground, larger when nearer (lower). Objects overlap by at most ~20%
of the smaller one's box; nearer objects are drawn over farther ones.

Ground truth: ``instances`` (H, W) uint8, the visible instance at each pixel (1 = sky, 2 = ground,
3.. = objects), ``types`` the object type of each instance (index into :data:`OBJECTS`, -1 = unused
slot) and ``boxes`` their tight inclusive boxes. Sample ``i`` is a pure function of ``(seed, i,
size)``; splits use the disjoint index ranges of :data:`camlib.datasets.procedural.SPLIT_OFFSETS`.
A few milliseconds per image on one core (about 3 ms at 160 x 160).

Paper profile: :func:`load_sun_annotations` reads SUN2012's LabelMe XML annotations (object names and
polygons) and :func:`rasterize_objects` turns them into the same ``instances`` / ``types`` maps.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from camlib.datasets import procedural as _P

__all__ = [
    "COMMON",
    "MAX_INSTANCES",
    "OBJECTS",
    "OFF_RATE",
    "PRESENCE",
    "SCENES",
    "SIGNATURE",
    "SKY_OBJECTS",
    "ProceduralScenes",
    "SceneSample",
    "SunImage",
    "informativeness",
    "load_sun_annotations",
    "make_scene_arrays",
    "make_scene_sample",
    "normalize_object_name",
    "object_presence",
    "rasterize_objects",
]

SCENES: tuple[str, ...] = ("street", "garden", "winter", "camp")
#: The three signature objects of each scene, most frequent first.
SIGNATURE: dict[str, tuple[str, str, str]] = {
    "street": ("house", "car", "pole"),
    "garden": ("flower", "mushroom", "bird"),
    "winter": ("snowman", "tree", "snowflake"),
    "camp": ("tent", "ball", "crate"),
}
#: Objects with the same rate in every scene (sky and ground are in every image).
COMMON: dict[str, float] = {"sky": 1.0, "ground": 1.0, "cloud": 0.7, "rock": 0.6}
SIGNATURE_RATES: tuple[float, float, float] = (0.9, 0.8, 0.7)
#: Rate of a scene's signature objects in the images of the OTHER scenes.
OFF_RATE = 0.08
OBJECTS: tuple[str, ...] = (*COMMON, *(o for s in SCENES for o in SIGNATURE[s]))
SKY_OBJECTS: frozenset[str] = frozenset({"cloud", "bird", "snowflake"})
STUFF: tuple[str, str] = ("sky", "ground")
MAX_INSTANCES = len(OBJECTS)  # every type at most once per image


def _presence() -> np.ndarray:
    p = np.zeros((len(SCENES), len(OBJECTS)))
    for s, scene in enumerate(SCENES):
        for name, rate in COMMON.items():
            p[s, OBJECTS.index(name)] = rate
        for other in SCENES:
            for r, name in zip(SIGNATURE_RATES, SIGNATURE[other], strict=True):
                p[s, OBJECTS.index(name)] = r if other == scene else OFF_RATE
    return p


#: P(object | scene), (len(SCENES), len(OBJECTS)): the generator's statistics.
PRESENCE: np.ndarray = _presence()
PRESENCE.setflags(write=False)


def informativeness(presence: np.ndarray = PRESENCE) -> np.ndarray:
    """Ground-truth informativeness ``g[s, o] = P(o | s) - mean_{s' != s} P(o | s')`` (S, O)."""
    p = np.asarray(presence, dtype=np.float64)
    S = p.shape[0]
    return p - (p.sum(0, keepdims=True) - p) / (S - 1)


# --------------------------------------------------------------------------- object shapes
# Each object: (aspect = height / width of its layout box, draw(frame, rng, aspect) -> [(part id, mask)]),
# drawn in the layout box u in [-1/2, 1/2], v in [-a/2, a/2] of a procedural._Frame (v points down).

_Parts = list[tuple[int, np.ndarray]]


def _bird(f: _P._Frame, rng: np.random.Generator, a: float) -> _Parts:
    from camlib.datasets.fine_grained import CRESTS, WINGS
    from camlib.datasets.fine_grained import _bird as draw_bird

    return draw_bird(f, rng, int(rng.integers(len(CRESTS))), int(rng.integers(len(WINGS))))


def _pole(f: _P._Frame, rng: np.random.Generator, a: float) -> _Parts:
    top, bot = -a / 2, a / 2
    w = max(0.1, 0.7 * f.px)
    lamp = f.ellipse(0.0, top + 0.22, 0.5, 0.22)
    return [(1, f.rect(-w, w, top + 0.3, bot)), (2, lamp)]


def _snowflake(f: _P._Frame, rng: np.random.Generator, a: float) -> _Parts:
    w = max(0.06, 0.6 * f.px)
    inside = (f.u**2 + f.v**2) <= 0.25
    out = np.zeros(f.u.shape, bool)
    phase = rng.uniform(0, math.pi / 3)
    for k in range(3):
        t = phase + k * math.pi / 3
        out |= np.abs(f.u * math.sin(t) - f.v * math.cos(t)) <= w
    return [(1, out & inside), (2, f.ellipse(0.0, 0.0, 0.12, 0.12))]


def _tent(f: _P._Frame, rng: np.random.Generator, a: float) -> _Parts:
    top, bot = -a / 2, a / 2
    return [(1, f.trapezoid(0.0, top, bot, 0.0, 0.5)), (2, f.trapezoid(0.0, top + 0.45 * a, bot, 0.0, 0.16))]


def _ball(f: _P._Frame, rng: np.random.Generator, a: float) -> _Parts:
    disc = f.ellipse(0.0, 0.0, 0.5, 0.5)
    return [(1, disc), (2, disc & (np.abs(f.v) <= 0.12))]


def _crate(f: _P._Frame, rng: np.random.Generator, a: float) -> _Parts:
    box = f.rect(-0.5, 0.5, -a / 2, a / 2)
    w = max(0.07, 0.6 * f.px)
    cross = box & ((np.abs(f.u - f.v) <= w) | (np.abs(f.u + f.v) <= w))
    frame = box & ~f.rect(-0.5 + 2 * w, 0.5 - 2 * w, -a / 2 + 2 * w, a / 2 - 2 * w)
    return [(1, box), (2, cross | frame)]


def _cloud(f: _P._Frame, rng: np.random.Generator, a: float) -> _Parts:
    m = f.ellipse(0.0, 0.05 * a, 0.5, 0.3 * a)
    for cu in (-0.2, 0.05, 0.25):
        m |= f.ellipse(cu + rng.uniform(-0.05, 0.05), -0.1 * a, rng.uniform(0.15, 0.22), 0.35 * a)
    return [(1, m)]


def _rock(f: _P._Frame, rng: np.random.Generator, a: float) -> _Parts:
    return [(1, f.ellipse(0.0, a / 2, 0.5, a) & (f.v <= a / 2))]


_SHAPES: dict[str, tuple[float, Callable[[_P._Frame, np.random.Generator, float], _Parts]]] = {
    **{name: _P._CLASS_SPECS[name] for name in ("house", "tree", "car", "flower", "snowman", "mushroom")},
    "bird": (0.85, _bird),
    "pole": (3.2, _pole),
    "snowflake": (1.0, _snowflake),
    "tent": (0.8, _tent),
    "ball": (1.0, _ball),
    "crate": (1.0, _crate),
    "cloud": (0.55, _cloud),
    "rock": (0.55, _rock),
}
_SIZE_RANGE = {
    "snowflake": (0.12, 0.18),
    "ball": (0.12, 0.18),
    "bird": (0.18, 0.26),
    "cloud": (0.25, 0.36),
    "rock": (0.14, 0.22),
    "pole": (0.3, 0.4),
}  # longest side / image side; others (0.2, 0.32)
_PREFER = {
    "cloud": (_P._P["white"], _P._P["gray"], _P._P["light blue"]),
    "rock": (_P._P["gray"], _P._P["brown"]),
}


# --------------------------------------------------------------------------- the canvas


class _Canvas:
    """A scene being drawn: sky + ground, then objects; keeps the instance map, types and boxes."""

    def __init__(self, rng: np.random.Generator, size: int) -> None:
        self.rng, self.size = rng, size
        S = size
        self.horizon = int(round(rng.uniform(0.35, 0.55) * S))
        gx, gy, up = _P._grids(S)
        sky0 = rng.uniform(120, 240, 3).astype(np.float32)
        sky1 = np.clip(sky0 + rng.normal(0, 35, 3), 0, 255).astype(np.float32)
        grd0 = rng.uniform(40, 180, 3).astype(np.float32)
        grd1 = np.clip(grd0 + rng.normal(0, 35, 3), 0, 255).astype(np.float32)
        t = (gy + 1.0) / 2.0  # 0 at the top, 1 at the bottom
        sky = sky0[:, None, None] + (sky1 - sky0)[:, None, None] * t[None]
        grd = grd0[:, None, None] + (grd1 - grd0)[:, None, None] * t[None]
        field_ = rng.standard_normal((3, 5, 5)).astype(np.float32) * np.float32(18.0)
        grd = grd + up @ field_ @ up.T  # low-frequency texture of the ground
        rows = np.arange(S)[:, None] < self.horizon
        self.img = np.ascontiguousarray(np.where(rows[None], sky, grd), dtype=np.float32)  # (3, S, S)
        self.instances = np.ascontiguousarray(np.broadcast_to(np.where(rows, 1, 2).astype(np.uint8), (S, S)))
        self.types = [OBJECTS.index("sky"), OBJECTS.index("ground")]
        self.bg_dist = np.minimum(
            _P._segment_distance(_P.PALETTE, sky0, sky1), _P._segment_distance(_P.PALETTE, grd0, grd1)
        )
        self.placed: list[tuple[float, float, float, float]] = []

    def free(self, box: tuple[float, float, float, float], max_overlap: float = 0.2) -> bool:
        """True when ``box`` overlaps every placed box by at most ``max_overlap`` of the smaller area."""
        x0, y0, x1, y1 = box
        for a0, b0, a1, b1 in self.placed:
            ix = max(0.0, min(x1, a1) - max(x0, a0))
            iy = max(0.0, min(y1, b1) - max(y0, b0))
            small = min((x1 - x0) * (y1 - y0), (a1 - a0) * (b1 - b0))
            if ix * iy > max_overlap * small:
                return False
        return True

    def frame_for(
        self, kind: str, longest: float, cx: float, base_y: float | None, cy: float | None, theta: float = 0.0
    ) -> tuple[_P._Frame, tuple[float, float, float, float]]:
        """The frame of an object of ``kind`` (standing with its bottom at ``base_y``, or centred at ``cy``)."""
        aspect = _SHAPES[kind][0]
        w = longest / max(1.0, aspect)
        h = w * aspect
        cy = base_y - h / 2 if base_y is not None else cy
        half = 0.5 * math.hypot(w, h) + 2.0
        return _P._Frame(self.size, cx, cy, half, theta, w, w), (
            cx - w / 2,
            cy - h / 2,
            cx + w / 2,
            cy + h / 2,
        )

    def draw(
        self,
        kind: str,
        frame: _P._Frame,
        layers: _Parts | None = None,
        colours: dict[int, np.ndarray] | None = None,
        type_id: int | None = None,
    ) -> int:
        """Paint an object's parts and record it as a new instance; returns its instance id."""
        aspect, fn = _SHAPES[kind] if kind in _SHAPES else (1.0, None)
        layers = layers if layers is not None else fn(frame, self.rng, aspect)
        inst = len(self.types) + 1
        colours = dict(colours or {})
        for pid in sorted({pid for pid, _ in layers}):
            if pid not in colours:
                colours[pid] = _P._pick_colour(
                    self.rng, self.bg_dist, list(colours.values()), _PREFER.get(kind, ())
                )
        shade = 1.08 - 0.16 * np.clip(frame.v / max(aspect, 1e-3) + 0.5, 0, 1)
        win = [self.img[ch][frame.win] for ch in range(3)]
        iwin = self.instances[frame.win]
        for pid, m in layers:
            for ch in range(3):
                win[ch][m] = colours[pid][ch] * shade[m]
            iwin[m] = inst
        self.types.append(OBJECTS.index(kind) if type_id is None else type_id)
        return inst

    def plan(self, kind: str, tries: int = 12) -> tuple[_P._Frame, tuple[float, float, float, float]] | None:
        """Find a free spot for one object of ``kind`` (sky objects above the horizon, others standing on
        the ground, larger when nearer) and reserve it; None when there is no room."""
        rng, S, hz = self.rng, self.size, self.horizon
        lo, hi = _SIZE_RANGE.get(kind, (0.2, 0.32))
        for _ in range(tries):
            if kind in SKY_OBJECTS:
                longest = rng.uniform(lo, hi) * S
                cx = rng.uniform(0.5 * longest, S - 0.5 * longest)
                cy = rng.uniform(0.3 * longest, max(0.3 * longest + 1, hz - 0.3 * longest))
                frame, box = self.frame_for(kind, longest, cx, None, cy, rng.uniform(-0.2, 0.2))
            else:
                base = rng.uniform(hz + 0.06 * S, S - 2)
                near = (base - hz) / max(S - hz, 1.0)  # 0 at the horizon, 1 at the bottom edge
                longest = rng.uniform(lo, hi) * S * (0.8 + 0.4 * near)
                w = longest / max(1.0, _SHAPES[kind][0])
                cx = rng.uniform(0.5 * w + 1, S - 1 - 0.5 * w)
                frame, box = self.frame_for(kind, longest, cx, base, None, rng.uniform(-0.08, 0.08))
            if box[0] >= 0 and box[1] >= 0 and box[2] <= S - 1 and box[3] <= S - 1 and self.free(box):
                self.placed.append(box)
                return frame, box
        return None

    def finish(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(image (H, W, 3) uint8, instances, types (MAX_INSTANCES,), boxes (MAX_INSTANCES, 4))``.

        Instances hidden entirely by nearer objects are dropped (type -1)."""
        S = self.size
        noise = np.frombuffer(self.rng.bytes(3 * S * S), dtype=np.int8).reshape(3, S, S)
        img = self.img + noise * np.float32(8.0 / 128.0)
        image = np.ascontiguousarray(np.clip(img, 0, 255).astype(np.uint8).transpose(1, 2, 0))
        n = len(self.types)
        types = np.full(max(MAX_INSTANCES, n), -1, dtype=np.int64)
        boxes = np.full((len(types), 4), -1, dtype=np.int64)
        inst = self.instances.ravel()
        counts = np.bincount(inst, minlength=n + 1)
        for k in range(1, n + 1):
            if counts[k] == 0:
                continue
            ys, xs = np.divmod(np.flatnonzero(inst == k), S)
            types[k - 1] = self.types[k - 1]
            boxes[k - 1] = (xs.min(), ys.min(), xs.max(), ys.max())
        return image, self.instances, types, boxes

    def add_objects(self, kinds: Sequence[str]) -> None:
        """Place every object of ``kinds`` that fits, then paint sky objects, then ground objects from
        far (base near the horizon) to near, so that nearer objects cover farther ones."""
        plans = [(k, p) for k in kinds if (p := self.plan(k)) is not None]
        order = sorted(plans, key=lambda kp: (kp[0] not in SKY_OBJECTS, kp[1][1][3]))
        for kind, (frame, _box) in order:
            self.draw(kind, frame)


# --------------------------------------------------------------------------- samples


@dataclass(frozen=True, eq=False)
class SceneSample:
    """One procedural scene: ``image`` (H, W, 3) uint8, ``label`` (index into :data:`SCENES`),
    ``instances`` (H, W) uint8 (instance ``k`` is slot ``k - 1``), ``types`` (MAX_INSTANCES,) object
    type per slot (-1 unused), ``boxes`` (MAX_INSTANCES, 4) inclusive boxes (-1 unused)."""

    image: np.ndarray
    label: int
    instances: np.ndarray
    types: np.ndarray
    boxes: np.ndarray

    @property
    def scene(self) -> str:
        return SCENES[self.label]

    def present(self) -> np.ndarray:
        """(len(OBJECTS),) bool: which object types are visible in the image."""
        out = np.zeros(len(OBJECTS), dtype=bool)
        out[self.types[self.types >= 0]] = True
        return out


def _check(index: int, seed: int, size: int) -> None:
    if not isinstance(index, (int, np.integer)) or isinstance(index, bool) or index < 0:
        raise ValueError(f"index must be a non-negative int, got {index!r}")
    _P._check_seed(seed)
    _P._check_size(size)
    if size < 64:
        raise ValueError(f"size must be >= 64 for scenes of several objects, got {size}")


def make_scene_sample(index: int, seed: int = 0, size: int = 160, scene: int | None = None) -> SceneSample:
    """Scene ``index`` of stream ``seed`` (a pure function). The scene category is uniform at random
    unless ``scene`` is given; each object type is present with probability ``PRESENCE[scene, type]``."""
    _check(index, seed, size)
    rng = np.random.default_rng([int(seed), int(index), 4242])
    label = int(rng.integers(len(SCENES))) if scene is None else int(scene)
    if not 0 <= label < len(SCENES):
        raise ValueError(f"scene must be in 0..{len(SCENES) - 1}, got {scene}")
    canvas = _Canvas(rng, size)
    draw = rng.random(len(OBJECTS)) < PRESENCE[label]
    kinds = [o for o, d in zip(OBJECTS, draw, strict=True) if d and o not in STUFF]
    canvas.add_objects([kinds[i] for i in rng.permutation(len(kinds))])
    image, instances, types, boxes = canvas.finish()
    return SceneSample(image, label, instances, types, boxes)


def make_scene_arrays(n: int, seed: int = 0, size: int = 160, start: int = 0, progress: bool = False) -> dict:
    """Samples ``start .. start + n - 1`` stacked: ``images`` (n, H, W, 3) uint8, ``labels`` (n,),
    ``instances`` (n, H, W) uint8, ``types`` (n, MAX_INSTANCES) and ``boxes`` (n, MAX_INSTANCES, 4)."""
    return _P.stack_samples(
        lambda i: make_scene_sample(i, seed, size),
        n,
        start,
        desc="scenes",
        progress=progress,
        fields={
            "images": "image",
            "labels": "label",
            "instances": "instances",
            "types": "types",
            "boxes": "boxes",
        },
    )


class ProceduralScenes(_P.InMemoryImages):
    """``n`` scenes of one split (index range :data:`~camlib.datasets.procedural.SPLIT_OFFSETS`), in memory.

    Arrays: ``images``, ``labels``, ``instances``, ``types``, ``boxes`` (see :func:`make_scene_arrays`)
    and ``present`` (n, len(OBJECTS)) bool; :meth:`tensors` gives float (n, 3, H, W) images in [0, 1];
    :meth:`identity` names the set for feature caches.
    """

    stream = "procedural_scenes(v1"

    def __init__(
        self, n: int, seed: int = 0, size: int = 160, split: str = "train", progress: bool = False
    ) -> None:
        if split not in _P.SPLIT_OFFSETS:
            raise ValueError(f"unknown split {split!r}; expected one of {sorted(_P.SPLIT_OFFSETS)}")
        a = make_scene_arrays(int(n), seed=seed, size=size, start=_P.SPLIT_OFFSETS[split], progress=progress)
        self.images, self.labels, self.instances = a["images"], a["labels"], a["instances"]
        self.types, self.boxes = a["types"], a["boxes"]
        self.present = np.zeros((len(self.labels), len(OBJECTS)), dtype=bool)
        rows, cols = np.nonzero(self.types >= 0)
        self.present[rows, self.types[rows, cols]] = True
        self.size, self.seed, self.split = int(size), int(seed), split
        self.classes, self.objects = SCENES, OBJECTS


# --------------------------------------------------------------------------- SUN2012 (paper profile)

SUN_LAYOUT = """<SUN_ROOT>/
  Images/<letter>/<scene>/<name>.jpg          (SUN2012: e.g. Images/d/dining_room/sun_aaa.jpg)
  Annotations/<letter>/<scene>/<name>.xml     (LabelMe XML: <filename>, <folder>, <object><name>,
                                               <deleted>, <polygon><pt><x>..</x><y>..</y></pt>...)
(an XML next to its image, <name>.xml beside <name>.jpg, works too)"""


@dataclass
class SunImage:
    """One annotated SUN image: its file, scene (the folder's last part), size (H, W) when the XML
    gives it, and its objects as ``(name, polygon (k, 2) float (x, y))`` in annotation order."""

    path: Path
    scene: str
    size: tuple[int, int] | None
    objects: list[tuple[str, np.ndarray]] = field(default_factory=list)


_SUFFIX = re.compile(r"\s+(occluded|crop|cropped|part|partial)$")


def normalize_object_name(name: str) -> str:
    """LabelMe object names are free text: lower case, single spaces, trailing 'occluded'/'crop' removed."""
    n = " ".join((name or "").lower().replace("_", " ").split())
    while True:
        m = _SUFFIX.search(n)
        if not m:
            return n
        n = n[: m.start()]


def _text(el: ET.Element | None, tag: str, default: str = "") -> str:
    found = el.find(tag) if el is not None else None
    return (found.text or "").strip() if found is not None and found.text else default


def _read_labelme(xml_path: Path, root: Path) -> SunImage | None:
    tree = ET.parse(xml_path).getroot()
    filename = _text(tree, "filename")
    folder = _text(tree, "folder").strip("/")
    candidates = [xml_path.with_name(filename)] if filename else []
    if filename:
        candidates += [root / "Images" / folder / filename, root / folder / filename]
        rel = xml_path.parent.relative_to(root)
        if rel.parts and rel.parts[0] == "Annotations":
            candidates.append(root.joinpath("Images", *rel.parts[1:], filename))
    image = next((c for c in candidates if c.is_file()), None)
    if image is None:
        return None
    scene_folder = folder or str(xml_path.parent.relative_to(root))
    scene = Path(scene_folder).name
    nrows, ncols = _text(tree.find("imagesize"), "nrows"), _text(tree.find("imagesize"), "ncols")
    size = (int(float(nrows)), int(float(ncols))) if nrows and ncols else None
    objects = []
    for obj in tree.findall("object"):
        if _text(obj, "deleted", "0") == "1":
            continue
        pts = [(float(_text(pt, "x")), float(_text(pt, "y"))) for pt in obj.findall("polygon/pt")]
        name = normalize_object_name(_text(obj, "name"))
        if name and len(pts) >= 3:
            objects.append((name, np.asarray(pts, dtype=np.float64)))
    return SunImage(image, scene, size, objects)


def load_sun_annotations(
    root: str | Path, scenes: Sequence[str] | None = None, min_images: int = 1
) -> list[SunImage]:
    """Annotated images under ``root`` (the SUN2012 folder, :data:`SUN_LAYOUT`), sorted by path.

    ``scenes``: keep these scene folders only (e.g. ``["dining_room", "bathroom"]``); otherwise every
    scene with at least ``min_images`` annotated images (the paper: 10 scenes with >= 200 each).
    Images without a single object are skipped. Raises FileNotFoundError naming the expected layout.
    """
    root = Path(root)
    xmls = sorted(root.rglob("*.xml")) if root.is_dir() else []
    if not xmls:
        raise FileNotFoundError(
            f"no LabelMe XML annotations under {root}. Expected the SUN2012 layout:\n{SUN_LAYOUT}\n"
            "Download SUN2012 (with annotations) from https://groups.csail.mit.edu/vision/SUN/"
        )
    out = [s for s in (_read_labelme(x, root) for x in xmls) if s is not None and s.objects]
    if scenes is not None:
        keep = set(scenes)
        out = [s for s in out if s.scene in keep]
    counts: dict[str, int] = {}
    for s in out:
        counts[s.scene] = counts.get(s.scene, 0) + 1
    out = [s for s in out if counts[s.scene] >= min_images]
    if not out:
        raise FileNotFoundError(
            f"no annotated image under {root} matched (scenes={scenes}, min_images={min_images})"
        )
    return sorted(out, key=lambda s: str(s.path))


def rasterize_objects(
    objects: Sequence[tuple[str, np.ndarray]],
    vocabulary: Sequence[str],
    shape: tuple[int, int],
    scale: tuple[float, float] = (1.0, 1.0),
) -> tuple[np.ndarray, np.ndarray]:
    """Polygons -> ``(instances (H, W) int32, types (n,))``, later objects over earlier ones (LabelMe
    lists background objects such as walls first). ``scale`` = (sy, sx) maps annotation pixels to the
    map's; objects whose name is not in ``vocabulary`` get type -1 (still drawn: they occlude)."""
    from skimage.draw import polygon

    index = {name: i for i, name in enumerate(vocabulary)}
    H, W = shape
    inst = np.zeros((H, W), dtype=np.int32)
    types = np.full(len(objects), -1, dtype=np.int64)
    for k, (name, pts) in enumerate(objects):
        rr, cc = polygon(np.asarray(pts)[:, 1] * scale[0], np.asarray(pts)[:, 0] * scale[1], shape=(H, W))
        inst[rr, cc] = k + 1
        types[k] = index.get(name, -1)
    return inst, types


def object_presence(objects: Sequence[tuple[str, np.ndarray]], vocabulary: Sequence[str]) -> np.ndarray:
    """(len(vocabulary),) bool: which vocabulary names occur among an image's ``(name, polygon)`` objects."""
    names = {name for name, _ in objects}
    return np.array([v in names for v in vocabulary], dtype=bool)
