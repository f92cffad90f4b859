"""Text-detection annotations in the mmocr ``textdet`` JSON format -> word boxes per image.

::

    {"metainfo": {"dataset_type": "TextDetDataset", "task_name": "textdet", ...},
     "data_list": [{"img_path": "imgs/test/img_1.jpg", "height": 720, "width": 1280,
                    "instances": [{"polygon": [x0, y0, x1, y1, x2, y2, x3, y3], "bbox": [x0, y0, x1, y1],
                                   "bbox_label": 0, "ignore": false}, ...]}, ...]}

(``../shared/data/scene-text/textdet_test.json``, paths relative to the JSON's folder.) Each image
becomes an :class:`~camlib.datasets.manifest.ImageRecord` whose ``Target`` has ``label`` 0 ("text"),
``boxes`` = the READABLE words (``ignore`` false) as inclusive int boxes (``round`` of mmocr's
``bbox``, which is the polygon's extent), ``size`` = (height, width) from the JSON; the ignored
words' boxes are in ``extra["ignored_boxes"]`` and every polygon in ``extra["polygons"]`` (mmocr's
protocol: a detection on an ignored word is neither a hit nor a false positive).

Validated on open: JSON syntax, missing keys, duplicate ``img_path``, a ``bbox`` that is inverted or
outside the image -> :class:`~camlib.datasets.manifest.ManifestError` naming the file and the line of
the JSON (``data_list`` entry index in the message).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from camlib.datasets.manifest import ImageRecord, ManifestError, check_box
from camlib.datasets.targets import Target

__all__ = ["open_scene_text", "read_textdet_json"]

_FIX = (
    "mmocr textdet format: data_list entries with img_path, height, width and instances of {polygon, bbox "
    "[x0, y0, x1, y1], ignore}"
)


def _line_of(text: str, needle: str, start: int = 0) -> tuple[int | None, int]:
    """1-based line of the first ``needle`` at or after character ``start``, and where to search next."""
    pos = text.find(needle, start)
    return (None, start) if pos < 0 else (text.count("\n", 0, pos) + 1, pos + len(needle))


def read_textdet_json(path: str | Path, root: str | Path | None = None) -> list[ImageRecord]:
    """Records of an mmocr textdet JSON (see the module docstring); ``root``: the folder ``img_path``
    is relative to (default: the JSON's folder)."""
    path = Path(path)
    root = Path(root) if root is not None else path.parent
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(
            path, exc.lineno, f"not valid JSON ({exc.msg}, column {exc.colno})", _FIX
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("data_list"), list):
        raise ManifestError(path, 1, "no 'data_list' list at the top level", _FIX)
    out: list[ImageRecord] = []
    seen: dict[str, int] = {}
    cursor = 0
    for k, item in enumerate(data["data_list"]):
        img = item.get("img_path") if isinstance(item, dict) else None
        line, cursor = _line_of(text, json.dumps(img) if img else '"img_path"', cursor)
        try:
            img, h, w, instances = (
                item["img_path"],
                int(item["height"]),
                int(item["width"]),
                item["instances"],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(path, line, f"data_list[{k}] lacks or garbles {exc}", _FIX) from None
        if img in seen:
            raise ManifestError(
                path, line, f"data_list[{k}]: duplicate img_path {img!r} (also data_list[{seen[img]}])", _FIX
            )
        seen[img] = k
        boxes, ignored, polygons = [], [], []
        for j, inst in enumerate(instances):
            try:
                bbox = [float(v) for v in inst["bbox"]][:4]
                ignore = bool(inst.get("ignore", False))
                polygon = [float(v) for v in inst.get("polygon", [])]
            except (KeyError, TypeError, ValueError) as exc:
                raise ManifestError(
                    path, line, f"data_list[{k}].instances[{j}] lacks or garbles {exc}", _FIX
                ) from None
            if len(bbox) != 4:
                raise ManifestError(path, line, f"data_list[{k}].instances[{j}].bbox needs 4 numbers", _FIX)
            check_box(bbox, (h, w), path, line, f"{_FIX}; data_list[{k}].instances[{j}]")
            (ignored if ignore else boxes).append(bbox)
            polygons.append(polygon)
        t = Target(
            0,
            np.rint(np.asarray(boxes, dtype=np.float64).reshape(-1, 4)),
            (h, w),
            img,
            extra={
                "ignored_boxes": np.rint(np.asarray(ignored, dtype=np.float64).reshape(-1, 4)).astype(
                    np.int64
                ),
                "polygons": polygons,
            },
        )
        out.append(ImageRecord(root / img, t, "test"))
    return out


def open_scene_text(root: str | Path, name: str = "textdet_test.json") -> list[ImageRecord]:
    """The records of ``<root>/<name>`` (``../shared/data/scene-text``: 10 photos, 82 words, 61 ignored)."""
    root = Path(root)
    if not (root / name).is_file():
        raise FileNotFoundError(
            f"{root / name} not found: expected an mmocr textdet folder ({name} + imgs/). "
            "Set SCENE_TEXT_ROOT or pass the folder"
        )
    return read_textdet_json(root / name, root)
