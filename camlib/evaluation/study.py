"""Notebook 03's study: the data, the networks and the settings every protocol is run in.

Both profiles call the same functions with different data: the quick profile EfficientNet-Lite0 on the
100-image ILSVRC val sample (or, without it, a small GAP CNN trained here on procedural shapes, which
have masks), the paper profile torchvision GoogLeNet / ResNet-50 and -GAP checkpoints on the full val
set. :class:`LocalizationStudy` runs :func:`camlib.evaluation.localize.evaluate_protocols` (the one
evaluation loop) for each setting: CAM single crop, the Backprop baseline, CAM with ten crops.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from camlib.core.cam import CAM, PAPER_OPTIONS, RELEASED_OPTIONS
from camlib.evaluation.batch import box_key
from camlib.evaluation.localize import (
    Protocols,
    TenCrop,
    comparison_rows,
    evaluate_protocols,
    input_normalizer,
    load_gap_checkpoint,
    mask_batches,
)

__all__ = ["LocalizationStudy", "load_networks", "model_of", "open_val_data", "preprocess_of"]

PROCEDURAL_NOTE = (
    "NOTE: no ILSVRC images (none found at ../shared/data/ilsvrc-val-sample or ILSVRC_ROOT, or USE_ILSVRC=False).\n"
    "This run uses the procedural shapes and a small GAP CNN trained here instead: its numbers are NOT ILSVRC "
    "numbers and\nare not compared with the paper's tables."
)


def open_val_data(profile: str, root: str | Path | None, *, use_ilsvrc: bool = True, wnids=None):
    """``(root, dataset)`` of ILSVRC val, or ``(None, None)`` for the procedural fallback (with a note).

    Paper profile: the full val set named explicitly (``root`` or ``$ILSVRC_ROOT``), never the sample;
    quick profile: ``root``, else :func:`camlib.datasets.ilsvrc.default_ilsvrc_root`, unless
    ``use_ilsvrc`` is False. Prints what was found.
    """
    from camlib.datasets.ilsvrc import LAYOUT_HINT, default_ilsvrc_root, open_ilsvrc_val

    if profile == "paper":
        named = root or os.environ.get("ILSVRC_ROOT")
        if not named or not Path(named).is_dir():
            raise FileNotFoundError(f"PROFILE='paper' needs ILSVRC_ROOT (parameter or environment variable) pointing at "
                                    f"the ILSVRC2012 val folder; got {root!r}. {LAYOUT_HINT}")  # fmt: skip
        found: Path | None = Path(named)
    else:
        found = (Path(root) if root else default_ilsvrc_root()) if use_ilsvrc else None
    if found is None:
        print(PROCEDURAL_NOTE)
        return None, None
    base = open_ilsvrc_val(found, wnids=wnids)
    print(f"{len(base)} ILSVRC val images from {found} ({base.source}), {sum(len(b) for b in base.boxes)} boxes")
    if profile == "paper" and len(base) < 50000:
        print(f"NOTE: {len(base)} images, not the full 50,000: numbers are for this subset")
    return found, base


def load_networks(
    profile: str,
    data: str,
    *,
    device: str = "cpu",
    paper_models=("googlenet", "resnet50"),
    gap_checkpoints: dict | None = None,
    n_train: int = 3000,
    epochs: int = 6,
    seed: int = 0,
    timings: dict | None = None,
) -> tuple[dict, dict]:
    """``(networks, descriptions)`` by name. Procedural data: a :class:`~camlib.models.SmallGAPNet`
    trained here on ``n_train`` procedural images (seconds in ``timings["train_s"]``); quick: the
    embedded EfficientNet-Lite0; paper: torchvision ``paper_models`` and -GAP networks from
    ``gap_checkpoints`` ({arch: path}; a missing file stops with how to make it; ``None``: every -GAP
    checkpoint notebook 02 left in :func:`camlib.models.checkpoint_dir`, ``{}``: none)."""
    from camlib.models import load_efficientnet_lite0, load_torchvision

    if data == "procedural":
        from camlib.datasets import CLASSES, ProceduralShapes
        from camlib.models import SmallGAPNet
        from camlib.models.train import TrainConfig, fit

        train = ProceduralShapes(n_train, seed=seed, split="train")
        model = SmallGAPNet(len(CLASSES))
        cfg = TrainConfig(epochs=epochs, batch_size=64, lr=0.1, lr_step_every=max(1, epochs * n_train // 64 * 2 // 3),
                          seed=seed)  # fmt: skip
        t0 = time.time()
        fit(model, train, cfg, device=device)
        if timings is not None:
            timings["train_s"] = round(time.time() - t0, 1)
        name = "small_gap_cnn"
        return {name: model.eval()}, {name: f"SmallGAPNet trained here on {n_train} procedural images ({epochs} epochs)"}
    if profile == "quick":
        lite = load_efficientnet_lite0(device)
        return {"efficientnet_lite0": lite}, {"efficientnet_lite0": lite.description}
    nets: dict = {name: load_torchvision(name, device=device) for name in paper_models}
    desc = {name: net.description for name, net in nets.items()}
    if gap_checkpoints is None:
        from camlib.models import GAP_ARCHS, find_gap_checkpoints

        gap_checkpoints = find_gap_checkpoints(GAP_ARCHS)
    for arch, path in gap_checkpoints.items():
        nets[arch] = load_gap_checkpoint(arch, path, device=device)
        desc[arch] = f"camlib.models.gap_variant({arch!r}) with weights from {path}"
    return nets, desc


def model_of(net) -> nn.Module:
    """The network as a channels-last module in eval mode (faster CPU convolutions, same maps)."""
    model = net.model if hasattr(net, "model") else net
    return model.to(memory_format=torch.channels_last).eval()


def preprocess_of(net, profile: str) -> Callable:
    """The whole image resized to 224 x 224 with the network's normalisation (no centre crop):
    :func:`~camlib.datasets.transforms.localization_input` (``profile`` is kept for old callers)."""
    from camlib.datasets.transforms import imagenet_eval_transform, localization_input

    if not hasattr(net, "preprocess"):  # a -GAP checkpoint: ImageNet normalisation
        return imagenet_eval_transform(224)
    return localization_input(net.preprocess)


SETTING_TEXT = {
    "cam": "CAM, single 224x224 input, bilinear to image size",
    "backprop": "Backprop (gradient saliency), single 224x224 input",
    "cam_ten_crop": "CAM, ten crops of 256x256 merged (released code), bicubic",
}


@dataclass
class LocalizationStudy:
    """The runs of notebook 03: every network of ``nets`` in every setting, on ILSVRC val (``base``) or
    on the procedural test set (``test``, with masks)."""

    profile: str
    nets: dict
    descriptions: dict
    base: object | None = None
    test: object | None = None
    batch_size: int = 25
    num_workers: int | None = 0  # None: 0 in the quick profile, min(8, CPU count) in the paper profile
    n_ten_crop: int = 100
    backprop: bool = True
    ten_crop: bool = True
    device: str = "cpu"
    results: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.num_workers is None:
            self.num_workers = 0 if self.profile == "quick" else min(8, os.cpu_count() or 1)

    @property
    def data(self) -> str:
        return "ilsvrc" if self.base is not None else "procedural"

    def batches(self, name: str, ten_crop: bool = False):
        """Batches of ``(x, targets)`` for network ``name``: ILSVRC with its preprocess (ten crops:
        :class:`~camlib.evaluation.localize.TenCrop`, the first ``n_ten_crop`` images in the quick profile,
        batches of ``batch_size // 5``), or the procedural test set with masks."""
        from torch.utils.data import Subset

        from camlib.datasets.ilsvrc import make_loader

        if self.data == "procedural":
            t = self.test
            return mask_batches(t.images, t.labels, t.boxes, t.masks, batch_size=self.batch_size)
        net = self.nets[name]
        pre = preprocess_of(net, self.profile)
        ds = self.base.with_preprocess(TenCrop(input_normalizer(pre)) if ten_crop else pre)
        if ten_crop and self.profile == "quick" and self.n_ten_crop < len(ds):
            ds = Subset(ds, range(self.n_ten_crop))
        bs = self.batch_size if not ten_crop else max(1, self.batch_size // 5)
        return make_loader(ds, batch_size=bs, num_workers=self.num_workers)

    def settings(self) -> Iterator[tuple[str, str, object, bool]]:
        """(run name, network name, map source, ten crop?) for this profile."""
        from camlib.core.saliency import BackpropSaliency

        for name, net in self.nets.items():
            yield f"{name}/cam", name, CAM(model_of(net)), False
            if self.backprop and (self.profile == "quick" or name == "googlenet"):
                yield f"{name}/backprop", name, BackpropSaliency(model_of(net)), False
            if self.ten_crop and self.data == "ilsvrc":
                yield f"{name}/cam_ten_crop", name, CAM(model_of(net)), True

    def run(self, protocols: Protocols, *, keep_maps: int = 24, partial: str | Path | None = None) -> dict[str, dict]:
        """:func:`~camlib.evaluation.localize.evaluate_protocols` for every setting (ten crops with
        :data:`RELEASED_OPTIONS`, the others with :data:`PAPER_OPTIONS`); prints the image counts and
        every skipped image. Returns (and keeps in ``results``) run name -> result.

        ``partial``: a JSON file rewritten (atomically) as each setting finishes, with the
        :func:`~camlib.evaluation.localize.summarize_protocols` of every finished one and the settings
        still to run: hours of a paper-profile run are not lost when a later setting fails."""
        todo = [run for run, *_ in self.settings()]
        for run, name, source, ten_crop in self.settings():
            r = evaluate_protocols(source, self.batches(name, ten_crop), options=RELEASED_OPTIONS if ten_crop else PAPER_OPTIONS,
                                   protocols=protocols, device=self.device, keep_predictions=True,
                                   keep_maps=keep_maps if run.endswith("/cam") else 0, desc=run)  # fmt: skip
            self.results[run] = r
            if partial is not None:
                self.write_partial(partial, todo)
            print(f"{run}: {r['n_images']} images, {r['n_skipped']} skipped (unreadable), {r['seconds']:.0f} s")
            for s in r["skipped"]:
                print(f"   skipped {s['image_id']}: {s['error']}")
        return self.results

    def write_partial(self, path: str | Path, planned) -> Path:
        """The finished settings' summaries (and the ones not yet run) to ``path``, atomically."""
        import json

        from camlib.core.io import atomic_write_text
        from camlib.evaluation.localize import summarize_protocols

        done = {run: summarize_protocols(r) for run, r in self.results.items()}
        payload = {"profile": self.profile, "networks": self.descriptions, "finished": done,
                   "not_yet_run": [run for run in planned if run not in done]}
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(payload, indent=1, sort_keys=True, default=str) + "\n")
        return path

    def image(self, image_id) -> np.ndarray:
        """The (H, W, 3) uint8 image of a prediction's ``image_id`` (predictions skip unreadable images,
        so they are found by id)."""
        if self.data == "ilsvrc":
            return np.asarray(self.base.load_image(self.base.ids.index(image_id)))
        return self.test.images[image_id]

    def example_grid(self, run: str, class_names, *, n_each: int = 6, fraction: float = 0.2):
        """Figure: the first ``n_each`` hits and misses (GT-known, IoU >= 0.5) of ``run``'s kept maps, with
        the paper-rule box of the true class's map (green) and the ground-truth boxes (red)."""
        from camlib.core import viz
        from camlib.core.boxes import iou

        r = self.results[run]
        key = box_key("paper", fraction)
        preds, maps = r["predictions"][: len(r["gt_maps"])], r["gt_maps"]
        hit = [iou(p["gt_known_box"][key], p["gt_boxes"]).max() >= 0.5 for p in preds]
        pick = [i for i in range(len(preds)) if hit[i]][:n_each] + [i for i in range(len(preds)) if not hit[i]][:n_each]
        return viz.plot_cam_grid([self.image(preds[i]["image_id"]) for i in pick],
                                 [maps[i].astype(np.float32) for i in pick],
                                 [class_names[preds[i]["label"]][:18] for i in pick],
                                 [preds[i]["gt_known_box"][key] for i in pick], [preds[i]["gt_boxes"] for i in pick],
                                 hits=[hit[i] for i in pick])  # fmt: skip

    def setting_of(self, run: str) -> str:
        """The comparison rows' ``setting`` text of a run: network, data, map setting."""
        name, kind = run.split("/")
        n = self.results[run]["n_images"]
        data = "100-image ILSVRC val sample" if n == 100 and self.profile == "quick" else f"{n} ILSVRC val images"
        return f"{self.descriptions[name].split(',')[0]}, {data}; {SETTING_TEXT[kind]}"

    def comparisons(self) -> list[dict]:
        """``write_results`` rows of every ILSVRC run against the paper (none for procedural data): CAM
        single crop vs Table 2 (and Table 3 and Choe et al. where they apply), Backprop with the paper's
        and the released rule, ten crops with the released rule."""
        from camlib.models import paper_key

        if self.data != "ilsvrc":
            return []
        rows: list[dict] = []
        for run, r in self.results.items():
            name, kind = run.split("/")
            key = "googlenet_gap" if self.profile == "quick" else paper_key(name)
            s = self.setting_of(run)
            if kind == "backprop":  # the paper's text rule and the released script's rule (used for its heat maps)
                rows += comparison_rows(r, s, backprop=True)
                rows += comparison_rows(r, s, backprop=True, rule="released")
            elif kind == "cam":
                resnet_like = name in ("efficientnet_lite0", "resnet50")
                rows += comparison_rows(r, s, cam_key=key, heuristics=key == "googlenet_gap",
                                        choe_key="imagenet.resnet50" if resnet_like else None,
                                        cutmix_key="imagenet.resnet50" if name == "resnet50" else None)  # fmt: skip
            else:
                rows += comparison_rows(r, s, cam_key=key, heuristics=key == "googlenet_gap", rule="released")
        return rows
