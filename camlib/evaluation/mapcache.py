"""The map source's output per image, on disk: what the evaluation loop needs from the network.

:func:`camlib.evaluation.loop.class_maps` turns a batch into the logits (B, C), the top-k classes and the
raw maps of the top-k classes and the true class at FEATURE resolution (e.g. 6 x 7 x 7 for
EfficientNet-Lite0 at 224): small next to the images, and the only part of an evaluation that runs the
network. :class:`MapCache` keeps them per image id in ONE file per (map source, weights, input
preprocessing, images, k, memory format), through the project's one feature cache
(:class:`camlib.core.features.FeatureCache`: atomic writes, the key's parts beside it in JSON), so a
second run of a notebook boxes the same maps without a forward pass. Change the weights
(:func:`camlib.core.digest.model_fingerprint`), the preprocessing description, the image list or ``topk``
and the key changes: the cache misses and is rebuilt. Everything after the maps (upsampling, boxes,
evaluators) runs as without the cache; only CAM single-crop sources are cached (ten crops and Backprop
are recomputed).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from camlib.core.digest import array_digest, model_fingerprint
from camlib.core.features import FeatureCache

__all__ = ["MAPS_VERSION", "MapCache"]

#: Bumped when what is stored changes (part of every key).
MAPS_VERSION = 1


class MapCache:
    """Logits, top-k classes and raw maps per image id for one map source and one image list.

    Build with :meth:`for_cam`; the loop calls :meth:`get` (all ids of a batch stored, else None) and
    :meth:`put`, and :meth:`save` once at the end (writes only when the entry was not on disk and every
    image of the list was seen). ``hit``: the entry came from disk.
    """

    def __init__(self, root: str | Path, parts: dict, image_ids: Sequence) -> None:
        self.store = FeatureCache(root)
        self.ids = [str(i) for i in image_ids]
        self.parts = {
            **parts,
            "version": MAPS_VERSION,
            "images": array_digest(np.array(self.ids)),
            "n": len(self.ids),
        }
        self.rows: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self.hit = False
        path = self.store.path(self.parts)
        if path.is_file():
            arrays, _ = self.store.get_or_compute(self.parts, dict)
            self.rows = {
                i: (arrays["logits"][k], arrays["pred"][k], arrays["maps"][k])
                for k, i in enumerate(arrays["ids"].tolist())
            }
            self.hit = True

    @classmethod
    def for_cam(
        cls,
        root: str | Path,
        cam,
        *,
        preprocessing: str,
        image_ids: Sequence,
        dataset: str,
        topk: int,
        channels_last: bool,
    ) -> MapCache:
        """The cache entry of :class:`~camlib.core.cam.CAM` ``cam`` on ``image_ids`` of ``dataset`` (a
        description: name and folder), inputs made as ``preprocessing`` says."""
        parts = {
            "source": type(cam).__name__,
            "model": type(cam.model).__name__,
            "weights_sha256": model_fingerprint(cam.model),
            "preprocessing": preprocessing,
            "dataset": dataset,
            "topk": int(topk),
            "channels_last": bool(channels_last),
        }
        return cls(Path(root) / "class_maps", parts, image_ids)

    @classmethod
    def for_val_set(cls, root: str | Path, cam, dataset, *, preprocessing: str, topk: int) -> MapCache:
        """THE cache entry of a single-crop CAM run on an ILSVRC val ``dataset`` (its ``ids`` and
        ``source``), whichever notebook makes it: notebook 01
        (:func:`camlib.evaluation.localize.evaluate_ilsvrc_sets`) and notebook 03
        (:class:`camlib.evaluation.study.LocalizationStudy`) build the same key for the same network,
        input preprocessing, images and ``topk``, so the one that runs second reads the first's maps
        instead of running the network. Both feed channels-last inputs to a channels-last model."""
        return cls.for_cam(root, cam, preprocessing=preprocessing, image_ids=dataset.ids,
                           dataset=str(getattr(dataset, "source", "")), topk=topk, channels_last=True)  # fmt: skip

    def get(self, ids: Sequence) -> tuple[Tensor, Tensor, Tensor] | None:
        """``(logits, pred, maps)`` of a batch as :func:`~camlib.evaluation.loop.class_maps` returns them,
        or None when any id is not stored."""
        keys = [str(i) for i in ids]
        if not self.hit or any(k not in self.rows for k in keys):
            return None
        logits, pred, maps = (torch.from_numpy(np.stack([self.rows[k][j] for k in keys])) for j in range(3))
        return logits, pred, maps

    def put(self, ids: Sequence, logits: Tensor, pred: Tensor, maps: Tensor) -> None:
        """Keep one computed batch (saved by :meth:`save`)."""
        if self.hit:
            return
        arrays = [
            t.detach().float().cpu().numpy() if t.is_floating_point() else t.detach().cpu().numpy()
            for t in (logits, pred, maps)
        ]
        for k, i in enumerate(ids):
            self.rows[str(i)] = (arrays[0][k], arrays[1][k], arrays[2][k])

    def save(self) -> bool:
        """Write the entry when it was computed here for every image of the list; True when written."""
        if self.hit or any(i not in self.rows for i in self.ids):
            return False
        rows = [self.rows[i] for i in self.ids]
        arrays = {
            "ids": np.array(self.ids),
            "logits": np.stack([r[0] for r in rows]),
            "pred": np.stack([r[1] for r in rows]),
            "maps": np.stack([r[2] for r in rows]),
        }
        self.store.get_or_compute(self.parts, lambda: arrays)
        return True
