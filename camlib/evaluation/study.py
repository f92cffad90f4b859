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

__all__ = [
    "LocalizationStudy",
    "ValSet",
    "data_rows",
    "load_networks",
    "model_of",
    "open_val_data",
    "open_val_sets",
    "preprocess_of",
    "seeded_subset",
    "squashed",
]

PROCEDURAL_NOTE = (
    "NOTE: no ILSVRC images (none found at ../shared/data/ilsvrc-val-sample or ILSVRC_ROOT, or USE_ILSVRC=False).\n"
    "This run uses the procedural shapes and a small GAP CNN trained here instead: its numbers are NOT ILSVRC "
    "numbers and\nare not compared with the paper's tables."
)


NO_ILSVRC_NOTE = (
    "NOTE: no ILSVRC val images found (parameters, $ILSVRC_ROOT / $ILSVRC_1K_ROOT, data/, ../shared/data): this run "
    "reports NO ILSVRC numbers; what needs them runs on procedural shapes with a small GAP CNN trained here (NOT "
    "ILSVRC numbers, not compared with the paper's tables) or is skipped. To measure on real photos, get: "
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
    print(
        f"{len(base)} ILSVRC val images from {found} ({base.source}), {sum(len(b) for b in base.boxes)} boxes"
    )
    if profile == "paper" and len(base) < 50000:
        print(f"NOTE: {len(base)} images, not the full 50,000: numbers are for this subset")
    return found, base


@dataclass(frozen=True)
class ValSet:
    """One ILSVRC val folder a notebook measures on: ``key`` (``"sample"``, ``"1k"``, ``"val"``), the
    folder's ``name``, where it was found (``root``, ``kind``: param / env / data / shared), the caveat of
    that copy, and the opened ``dataset``. :meth:`source` is its results ``data`` row."""

    key: str
    name: str
    root: Path
    kind: str
    caveat: str
    dataset: object

    @property
    def n(self) -> int:
        return len(self.dataset)

    @property
    def label(self) -> str:
        return f"{self.name} (n={self.n})"

    def source(self, n_images: int | None = None):
        from camlib.datasets.roots import DataSource

        return DataSource(self.name, self.kind, self.n if n_images is None else n_images, self.caveat)


#: the quick profile's ILSVRC val sets: key -> set name of :func:`camlib.datasets.roots.resolve_root`
QUICK_SETS = {"sample": "ilsvrc", "1k": "ilsvrc-1k"}


def open_val_sets(
    profile: str,
    root: str | Path | None = None,
    root_1k: str | Path | None = None,
    *,
    use_ilsvrc: bool = True,
    wnids=None,
) -> list[ValSet]:
    """Every ILSVRC val set this run measures on, each reported on its own (never silently pooled).

    Quick profile: the ``"ilsvrc"`` set (``root`` -> ``$ILSVRC_ROOT`` -> ``data/`` -> the 100-image
    ``../shared`` sample) and the ``"ilsvrc-1k"`` set (``root_1k`` -> ``$ILSVRC_1K_ROOT`` -> ... -> the
    1,000 227 x 227 images), each when found (:func:`camlib.datasets.roots.resolve_root`); none found (or
    ``use_ilsvrc=False``): ``[]`` and the first line printed says so, with the commands that get the
    real sets. Paper profile: the one folder :func:`open_val_data` opens (never a sample). Prints one
    line per set: what, where, how found, its caveat.
    """
    from camlib.datasets.ilsvrc import open_ilsvrc_val
    from camlib.datasets.roots import SETS, resolve_root

    if profile == "paper":
        found, base = open_val_data(profile, root, use_ilsvrc=use_ilsvrc, wnids=wnids)
        kind = "param" if root else "env"
        return [ValSet("val", Path(found).name, Path(found), kind, SETS["ilsvrc"].caveat(Path(found)), base)]
    if not use_ilsvrc:
        print("USE_ILSVRC=False: " + PROCEDURAL_NOTE.split("\n", 1)[1])
        return []
    out = []
    answers = {
        key: resolve_root(name, r) for (key, name), r in zip(QUICK_SETS.items(), (root, root_1k), strict=True)
    }
    if not any(answers.values()):
        print(NO_ILSVRC_NOTE + "; ".join(f"{a.name}: {a.fetch}" for a in answers.values()))
        return []
    for key, a in answers.items():
        if not a:
            print(f"{SETS[a.name].title}: not found ({a.fetch}); measured without it")
            continue
        ds = open_ilsvrc_val(a.path, wnids=wnids)
        v = ValSet(key, a.path.name, a.path, a.kind, a.info.caveat if a.info else "", ds)
        out.append(v)
        print(
            f"{v.label}: {sum(len(b) for b in ds.boxes)} boxes, found via {a.kind} at {a.path}"
            + (f"; caveat: {v.caveat}" if v.caveat else "")
        )
    return out


def data_rows(sets: list[ValSet], n_procedural: int) -> list:
    """The results ``data`` rows of a run over ``sets`` (name, root kind, n, caveat per set); none
    found: one row for the procedural fallback's ``n_procedural`` test images."""
    from camlib.datasets.roots import DataSource

    if sets:
        return [s.source() for s in sets]
    return [
        DataSource(
            "procedural shapes",
            "procedural",
            n_procedural,
            "drawn by camlib.datasets.ProceduralShapes, small GAP CNN trained here: NOT ILSVRC numbers",
        )
    ]


def seeded_subset(n_total: int, n: int | None, seed: int | None) -> list[int]:
    """Indices of the images an expensive setting runs on: all of them when ``n`` is None or not
    smaller than ``n_total``; else the first ``n`` (``seed`` None, as before) or ``n`` drawn without
    replacement with ``seed`` (sorted)."""
    if n is None or n >= n_total:
        return list(range(n_total))
    if seed is None:
        return list(range(n))
    return sorted(np.random.default_rng(seed).choice(n_total, size=n, replace=False).tolist())


def squashed(base, size: int = 227):
    """A copy of an ILSVRC val dataset made the way ``ilsvrc-val-1k`` was: each image squashed to
    ``size`` x ``size`` (the whole image resized, bilinear, aspect ratio not kept) and its boxes scaled
    per axis by size/W and size/H (then truncated to pixels, as the manifest reader does). Image sizes
    are read from the files' headers."""
    from PIL import Image

    from camlib.datasets.ilsvrc import ILSVRCBoxDataset

    class Squashed(ILSVRCBoxDataset):
        def load_image(self, i: int):
            return super().load_image(i).resize((size, size), Image.BILINEAR)

    sizes = []
    for p in base.paths:
        with Image.open(p) as im:
            sizes.append(im.size)
    boxes = [
        np.trunc(np.asarray(b, float) * np.array([size / w, size / h] * 2)).astype(np.int64)
        for b, (w, h) in zip(base.boxes, sizes, strict=True)
    ]
    return Squashed(
        base.ids, base.paths, base.labels, boxes, base.preprocess, f"{base.source}, squashed to {size}x{size}"
    )


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
        return {name: model.eval()}, {
            name: f"SmallGAPNet trained here on {n_train} procedural images ({epochs} epochs)"
        }
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
    n_backprop: int | None = None
    subset_seed: int | None = None
    label: str | None = None
    cache_dir: str | None = None
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

    def batches(self, name: str, ten_crop: bool = False, limit: int | None = None):
        """Batches of ``(x, targets)`` for network ``name``: ILSVRC with its preprocess (ten crops:
        :class:`~camlib.evaluation.localize.TenCrop`, ``n_ten_crop`` images in the quick profile,
        batches of ``batch_size // 5``; ``limit``: that many images), or the procedural test set with
        masks. A subset is the first images, or a seeded draw with ``subset_seed`` (:func:`seeded_subset`)."""
        from torch.utils.data import Subset

        from camlib.datasets.ilsvrc import make_loader

        if self.data == "procedural":
            t = self.test
            return mask_batches(t.images, t.labels, t.boxes, t.masks, batch_size=self.batch_size)
        net = self.nets[name]
        pre = preprocess_of(net, self.profile)
        ds = self.base.with_preprocess(TenCrop(input_normalizer(pre)) if ten_crop else pre)
        if ten_crop and self.profile == "quick":
            limit = self.n_ten_crop if limit is None else min(limit, self.n_ten_crop)
        if limit is not None and limit < len(ds):
            ds = Subset(ds, seeded_subset(len(ds), limit, self.subset_seed))
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

    def run(
        self, protocols: Protocols, *, keep_maps: int = 24, partial: str | Path | None = None
    ) -> dict[str, dict]:
        """:func:`~camlib.evaluation.localize.evaluate_protocols` for every setting (ten crops with
        :data:`RELEASED_OPTIONS`, the others with :data:`PAPER_OPTIONS`); prints the image counts and
        every skipped image. Returns (and keeps in ``results``) run name -> result.

        ``partial``: a JSON file rewritten (atomically) as each setting finishes, with the
        :func:`~camlib.evaluation.localize.summarize_protocols` of every finished one and the settings
        still to run: hours of a paper-profile run are not lost when a later setting fails."""
        todo = [run for run, *_ in self.settings()]
        for run, name, source, ten_crop in self.settings():
            limit = self.n_backprop if run.endswith("/backprop") else None
            r = evaluate_protocols(source, self.batches(name, ten_crop, limit), options=RELEASED_OPTIONS if ten_crop else PAPER_OPTIONS,
                                   protocols=protocols, device=self.device, keep_predictions=True,
                                   keep_maps=keep_maps if run.endswith("/cam") else 0, desc=run,
                                   map_cache=self.map_cache(run, source, protocols.topk))  # fmt: skip
            self.results[run] = r
            if partial is not None:
                self.write_partial(partial, todo)
            print(
                f"{run}: {r['n_images']} images, {r['n_skipped']} skipped (unreadable), {r['seconds']:.0f} s"
            )
            for s in r["skipped"]:
                print(f"   skipped {s['image_id']}: {s['error']}")
        return self.results

    def summary(self, fraction: float = 0.2, *, seed: int = 0, min_count: int = 5) -> dict[str, dict]:
        """Per run: :func:`camlib.evaluation.records.set_summary` (every headline number with its 95%
        interval over images; for the CAM single-crop run also the box-area strata and the
        post-stratified full-val estimate)."""
        from camlib.evaluation.records import set_summary

        return {
            run: set_summary(
                r["records"],
                fraction=fraction,
                seed=seed,
                min_count=min_count,
                strata=run.endswith("/cam") and self.data == "ilsvrc",
            )
            for run, r in self.results.items()
        }

    def held_out(self, *, seed: int = 0) -> dict[str, dict]:
        """Per run: the threshold lesson on disjoint halves (:func:`camlib.evaluation.records.held_out_halves`)
        on GT-known localization at IoU 0.5 over the paper rule's fractions."""
        from camlib.evaluation.records import held_out_halves

        out = {}
        for run, r in self.results.items():
            rec = r["records"]
            thresholds, ious = rec.sweep_axes["gt_known_sweep.largest"]
            out[run] = held_out_halves(
                rec.sweeps["gt_known_sweep.largest"][:, ious.index(0.5), :], thresholds, seed=seed
            )
        return out

    def squash_effect(self, size: int = 227, *, fraction: float = 0.2, seed: int = 0) -> dict:
        """What squashing the whole image to ``size`` x ``size`` (as the 1k set was made) does to the
        numbers, measured on THIS study's images: the first network's CAM single-crop run again on
        :func:`squashed` copies, paired with the as-is run image by image
        (:func:`camlib.evaluation.records.paired_effect`: ``before`` = as is, ``after`` = squashed)."""
        from camlib.evaluation.batch import box_key
        from camlib.evaluation.records import paired_effect

        name = next(iter(self.nets))
        run = f"{name}/cam"
        other = LocalizationStudy(self.profile, {name: self.nets[name]}, self.descriptions, base=squashed(self.base, size),
                                  batch_size=self.batch_size, num_workers=self.num_workers, backprop=False,
                                  ten_crop=False, device=self.device)  # fmt: skip
        other.run(Protocols(fractions=(fraction,), released=False), keep_maps=0)
        rule = box_key("paper", fraction)
        names = {
            "top1_acc": "classification.top1",
            "gt_known_loc_acc": f"{rule}.gt_known",
            "top1_loc_acc": f"{rule}.top1_loc",
        }
        out = paired_effect(self.results[run]["records"], other.results[run]["records"], names, seed=seed)
        return {"size": size, "run": run, "n": other.results[run]["n_images"], "effects": out}

    def map_cache(self, run: str, source, topk: int):
        """The :class:`~camlib.evaluation.mapcache.MapCache` of a CAM single-crop run on ILSVRC under
        ``cache_dir`` (None otherwise: other settings are recomputed)."""
        if self.cache_dir is None or self.data != "ilsvrc" or not run.endswith("/cam"):
            return None
        from camlib.evaluation.mapcache import MapCache

        name = run.split("/")[0]
        return MapCache.for_val_set(
            self.cache_dir, source, self.base, preprocessing=self.descriptions[name], topk=topk
        )

    def write_partial(self, path: str | Path, planned) -> Path:
        """The finished settings' summaries (and the ones not yet run) to ``path``, atomically."""
        import json

        from camlib.core.io import atomic_write_text
        from camlib.evaluation.localize import summarize_protocols

        done = {run: summarize_protocols(r) for run, r in self.results.items()}
        payload = {
            "profile": self.profile,
            "networks": self.descriptions,
            "finished": done,
            "not_yet_run": [run for run in planned if run not in done],
        }
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
        pick = [i for i in range(len(preds)) if hit[i]][:n_each] + [
            i for i in range(len(preds)) if not hit[i]
        ][:n_each]
        return viz.plot_cam_grid([self.image(preds[i]["image_id"]) for i in pick],
                                 [maps[i].astype(np.float32) for i in pick],
                                 [class_names[preds[i]["label"]][:18] for i in pick],
                                 [preds[i]["gt_known_box"][key] for i in pick], [preds[i]["gt_boxes"] for i in pick],
                                 hits=[hit[i] for i in pick])  # fmt: skip

    def setting_of(self, run: str) -> str:
        """The comparison rows' ``setting`` text of a run: network, data, map setting."""
        name, kind = run.split("/")
        n = self.results[run]["n_images"]
        data = (
            "100-image ILSVRC val sample"
            if n == 100 and self.profile == "quick"
            else f"{n} ILSVRC val images"
        )
        if self.label is not None:
            data = f"{n} images of {self.label}" + (
                f" (seeded subset, seed {self.subset_seed})" if n < len(self.base) else ""
            )
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
            if (
                kind == "backprop"
            ):  # the paper's text rule and the released script's rule (used for its heat maps)
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
