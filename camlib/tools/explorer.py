"""An interactive CAM explorer for notebooks (ipywidgets), with a static fallback.

Pick an image, a model, a class from the top-k list, the threshold, the box rule and the upsampling
mode; the overlay, the box and the top-5 strip update at once. The forward pass runs once per
(model, image): the logits and features are cached, and a class's map is recomputed from them by
:func:`camlib.core.cam.maps_from_features` (``M_c = sum_k w_k^c f_k``, or ``relu(W_c f + b_c)`` for a
1x1-conv classifier: exactly :class:`~camlib.core.cam.CAM`'s map), so moving a slider never touches
the network.

With ``interactive=False`` (papermill, exported notebooks) or without a widget front end,
:meth:`CAMExplorer.show` draws one static figure with the current settings instead.

Images come as a dict, or from a dataset: :meth:`CAMExplorer.from_ilsvrc` (ILSVRC val images with their
ground-truth boxes, notebook 03) and :meth:`CAMExplorer.from_arrays` (the procedural sets). Models are
:class:`~camlib.models.imagenet.ImageNetModel` (or loaders of one); :func:`as_explorer_model` wraps a bare
network trained in a notebook. ``compare=True`` turns the model menu into a toggle and the static
fallback into the models side by side (GAP vs GMP in notebook 02).
"""

from __future__ import annotations

import dataclasses
import html
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from camlib.core.boxes import paper_box
from camlib.core.cam import CAM, CAMOptions, fc_weights, maps_from_features, postprocess
from camlib.core.viz import GT_COLOR, draw_box, overlay
from camlib.datasets.files import decode_image_bytes, to_rgb_array
from camlib.datasets.transforms import localization_input
from camlib.models.imagenet import ImageNetModel

__all__ = ["BOX_RULES", "CAMExplorer", "ExplorerState", "as_explorer_model"]

ModelSource = ImageNetModel | Callable[[], ImageNetModel]


def _unit_float(image) -> torch.Tensor:
    """(H, W, 3) uint8 array or PIL image -> (3, H, W) float in [0, 1] at its own size (procedural data)."""
    a = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image)
    return torch.from_numpy(np.ascontiguousarray(a[..., :3])).permute(2, 0, 1).float() / 255.0


def as_explorer_model(
    net: ImageNetModel | nn.Module,
    name: str,
    classes: Sequence[str],
    preprocess: Callable[[object], torch.Tensor] | None = None,
) -> ImageNetModel:
    """A model as the explorer takes it. An :class:`ImageNetModel` is kept (its ``preprocess`` replaced
    when one is given); a bare network (e.g. a ``SmallGAPNet`` trained in the notebook) is wrapped, fed
    images as float [0, 1] at their own size unless ``preprocess`` says otherwise."""
    if isinstance(net, ImageNetModel):
        return net if preprocess is None else dataclasses.replace(net, preprocess=preprocess)
    return ImageNetModel(
        name=name,
        model=net.eval(),
        preprocess=preprocess or _unit_float,
        input_size=(0, 0),
        classes=list(classes),
        description=f"{type(net).__name__} ({name})",
    )


def _paper_rule(m: np.ndarray, t: float) -> np.ndarray:
    return paper_box(m, t)


#: name -> function(map normalised to max 1, threshold) -> box. More rules register here.
BOX_RULES: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {"paper (largest component)": _paper_rule}


@dataclass
class ExplorerState:
    image: str
    model: str
    rank: int = 0  # which of the top-k classes (0 = best)
    threshold: float = 0.2
    rule: str = "paper (largest component)"
    upsample: str = "bilinear"
    topk: int = 5


@dataclass
class _Cached:
    logits: torch.Tensor  # (C,)
    features: torch.Tensor  # (1, K, h, w), the feature layer's output as CAM saw it
    top: list[int] = field(default_factory=list)


class CAMExplorer:
    """``CAMExplorer(images={"cat": array, ...}, models={"lite0": loader, ...})``.

    ``models`` maps a name to a zero-argument function returning an
    :class:`~camlib.models.imagenet.ImageNetModel` (loaded lazily, once). ``gt_boxes`` optionally maps
    an image name to its ground-truth boxes, drawn in red.
    """

    def __init__(
        self,
        images: dict[str, np.ndarray],
        models: dict[str, ModelSource],
        gt_boxes: dict[str, np.ndarray] | None = None,
        compare: bool = False,
    ) -> None:
        if not images or not models:
            raise ValueError("the explorer needs at least one image and one model")
        self.images = {k: np.asarray(v) for k, v in images.items()}
        self.model_loaders = models
        self.gt_boxes = gt_boxes or {}
        self.compare = compare
        self.last_figure: plt.Figure | None = None  # the static view :meth:`show` drew last
        self._models: dict[str, tuple[ImageNetModel, CAM]] = {}
        self._fc: dict[
            str, tuple[torch.Tensor, torch.Tensor | None]
        ] = {}  # the classifier (W, b), float on CPU
        self._cache: dict[tuple[str, str], _Cached] = {}
        self.forward_passes = 0
        self.state = ExplorerState(image=next(iter(images)), model=next(iter(models)))

    @classmethod
    def from_ilsvrc(
        cls, dataset, models: dict[str, ModelSource], classes: Sequence[str], n: int = 8, **kwargs
    ) -> CAMExplorer:
        """The first ``n`` readable images of an ILSVRC box dataset (:mod:`camlib.datasets.ilsvrc`), named
        ``"<image id> (<true class>)"``, with their ground-truth boxes (red). Unreadable files are left out."""
        images, boxes = {}, {}
        for i in range(len(dataset)):
            if len(images) == n:
                break
            try:
                img = np.array(dataset.load_image(i))  # a writable copy
            except Exception:  # noqa: BLE001 - the evaluation counts unreadable files; here they are just not shown
                continue
            name = f"{Path(str(dataset.ids[i])).stem} ({classes[dataset.labels[i]][:24]})"
            images[name], boxes[name] = img, dataset.target(i, img.shape[:2])["boxes"]
        if not images:
            raise ValueError(f"none of the first {len(dataset)} images of the dataset could be read")
        return cls(images, models, gt_boxes=boxes, **kwargs)

    @classmethod
    def from_arrays(
        cls,
        images: np.ndarray,
        labels: Sequence[int],
        boxes,
        models: dict[str, ModelSource],
        classes: Sequence[str],
        n: int = 8,
        **kwargs,
    ) -> CAMExplorer:
        """The first ``n`` of in-memory (N, H, W, 3) images (e.g. a procedural test split) with one or more
        ground-truth boxes each, named ``"#<index> (<true class>)"``."""
        names = [f"#{i} ({classes[int(labels[i])]})" for i in range(min(n, len(images)))]
        return cls(
            {k: images[i] for i, k in enumerate(names)},
            models,
            gt_boxes={k: np.asarray(boxes[i]).reshape(-1, 4) for i, k in enumerate(names)},
            **kwargs,
        )

    # -- computation -----------------------------------------------------------------------------
    def _model(self, name: str) -> tuple[ImageNetModel, CAM]:
        if name not in self._models:
            source = self.model_loaders[name]
            net = source if isinstance(source, ImageNetModel) else source()
            self._models[name] = (net, CAM(net.model))
        return self._models[name]

    def _features(self, image: str, model: str) -> _Cached:
        key = (model, image)
        if key not in self._cache:
            net, cam = self._model(model)
            device = next(net.model.parameters()).device
            x = localization_input(net.preprocess)(self.images[image])[None].to(
                device
            )  # whole image, no crop
            out = cam(x, topk=1)
            self.forward_passes += 1
            if model not in self._fc:
                w, b = fc_weights(net.model, out.head)
                self._fc[model] = (
                    w.detach().float().cpu().clone(),
                    None if b is None else b.detach().float().cpu().clone(),
                )
            self._cache[key] = _Cached(
                out.logits[0].detach().float().cpu().clone(), out.features.detach().float().cpu().clone()
            )
        return self._cache[key]

    def raw_map(self, image: str, model: str, c: int) -> torch.Tensor:
        """The raw (1, 1, h, w) CAM of class ``c`` from the cached features, exactly as :class:`CAM`
        computes it (:func:`~camlib.core.cam.maps_from_features` with the head's kind: a 1x1-conv
        classifier's map includes its bias and ReLU)."""
        cached = self._features(image, model)
        head = self._model(model)[1].head
        w, b = self._fc[model]
        return maps_from_features(cached.features, w, b, torch.tensor([[int(c)]]), head.kind, relu=head.relu)

    def add_image(self, name: str, image) -> None:
        """Add an image to the choices: a PIL image or an array, read by
        :func:`camlib.datasets.files.to_rgb_array` (16-bit scaled, RGBA's alpha dropped, float in [0, 1]
        scaled by 255; anything else a ValueError naming ``name``)."""
        self.images[name] = to_rgb_array(image, name)

    def add_upload(self, name: str, content: bytes) -> str:
        """Add an uploaded image file: decoded, turned upright by its EXIF orientation
        (:func:`camlib.datasets.files.decode_image_bytes`); returns its name in the choices,
        ``"upload: <name>"``. A file that is not a readable image raises
        :class:`~camlib.datasets.files.UnreadableImageError` naming it; nothing is added."""
        key = f"upload: {name}"
        self.add_image(key, decode_image_bytes(content, f"upload {name}"))
        return key

    def compute(self, state: ExplorerState | None = None) -> dict:
        """Everything one view shows: top-k names/probabilities, the selected class's map and box."""
        s = state or self.state
        net = self._model(s.model)[0]
        cached = self._features(s.image, s.model)
        probs = cached.logits.softmax(0)
        top = probs.topk(min(s.topk, len(probs))).indices.tolist()
        c = top[min(s.rank, len(top) - 1)]
        raw = self.raw_map(s.image, s.model, c)
        img = self.images[s.image]
        opts = CAMOptions(upsample=s.upsample, size="original", normalize="max")
        m = postprocess(raw, opts, original_size=img.shape[:2])[0, 0].numpy()
        if m.shape != img.shape[:2]:  # upsample="none": show the raw grid stretched over the image
            m = postprocess(
                raw,
                CAMOptions(upsample="bilinear", size="original", normalize="max"),
                original_size=img.shape[:2],
            )[0, 0].numpy()
        box = BOX_RULES[s.rule](m, s.threshold)
        return {
            "classes": top,
            "names": [net.classes[i] for i in top],
            "probs": probs[top].tolist(),
            "selected": c,
            "map": m,
            "box": box,
            "readout": self.readout(box, img.shape[:2]),
        }

    @staticmethod
    def readout(box: np.ndarray, size: tuple[int, int]) -> str:
        if box[0] < 0:
            return "box: none (no pixel reaches the threshold)"
        area = (box[2] - box[0] + 1) * (box[3] - box[1] + 1)
        return f"box: x {box[0]}-{box[2]}, y {box[1]}-{box[3]} ({100 * area / (size[0] * size[1]):.1f}% of the image)"

    # -- drawing ---------------------------------------------------------------------------------
    def _draw(self, s: ExplorerState, ax, bx, title: str) -> dict:
        """The overlay with the boxes on ``ax``, the top-k strip on ``bx``; returns :meth:`compute`'s dict."""
        r = self.compute(s)
        sel = min(s.rank, len(r["names"]) - 1)
        ax.imshow(overlay(self.images[s.image], r["map"]))
        for g in np.asarray(self.gt_boxes.get(s.image, np.zeros((0, 4)))).reshape(-1, 4):
            draw_box(ax, g, GT_COLOR)
        draw_box(ax, r["box"], label=r["names"][sel])
        ax.set_title(f"{title}\n{r['readout']}", fontsize=9)
        ax.axis("off")
        colors = ["#00c853" if i == sel else "#90a4ae" for i in range(len(r["names"]))]
        bx.barh(range(len(r["names"]))[::-1], r["probs"], color=colors)
        bx.set_yticks(range(len(r["names"]))[::-1], [n[:20] for n in r["names"]], fontsize=8)
        bx.set_xlim(0, 1)
        bx.set_title(f"top-{len(r['names'])} (softmax)", fontsize=9)
        return r

    def figure(self, state: ExplorerState | None = None) -> plt.Figure:
        """One view: the overlay with its box (green) and ground truth (red), and the top-k strip."""
        s = state or self.state
        fig = plt.figure(figsize=(9, 4.2))
        ax = fig.add_axes([0.0, 0.0, 0.58, 0.9])
        bx = fig.add_axes([0.68, 0.12, 0.3, 0.7])
        self._draw(s, ax, bx, f"{s.image} · {s.model} · t = {s.threshold:.2f}")
        return fig

    def compare_figure(self, state: ExplorerState | None = None) -> plt.Figure:
        """Every model side by side on the same image and settings: overlays on top, top-k strips below."""
        s = state or self.state
        names = list(self.model_loaders)
        fig, axes = plt.subplots(
            2,
            len(names),
            figsize=(4.2 * len(names), 6.2),
            squeeze=False,
            gridspec_kw={"height_ratios": [3, 1.4]},
        )
        for j, m in enumerate(names):
            self._draw(
                dataclasses.replace(s, model=m),
                axes[0, j],
                axes[1, j],
                f"{m} · {s.image} · t = {s.threshold:.2f}",
            )
        fig.tight_layout()
        return fig

    def _png(self) -> bytes:
        fig = self.figure()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        plt.close(fig)
        return buf.getvalue()

    # -- widgets ---------------------------------------------------------------------------------
    def widget(self):
        """The ipywidgets UI (VBox). Every control re-renders from the cached features."""
        import ipywidgets as W

        s = self.state
        image = W.Dropdown(options=list(self.images), value=s.image, description="image")
        chooser = W.ToggleButtons if self.compare else W.Dropdown  # compare: a GAP/GMP-style toggle
        model = chooser(options=list(self.model_loaders), value=s.model, description="model")
        rank = W.Dropdown(description="class", layout=W.Layout(width="340px"))
        thr = W.FloatSlider(
            value=s.threshold, min=0.05, max=0.95, step=0.05, description="threshold", continuous_update=False
        )
        rule = W.Dropdown(options=list(BOX_RULES), value=s.rule, description="box rule")
        ups = W.ToggleButtons(
            options=["bilinear", "bicubic", "none"], value=s.upsample, description="upsample"
        )
        upload = W.FileUpload(accept="image/*", multiple=False, description="upload")
        status = W.HTML()  # an upload that cannot be read says so here, not as a traceback in the callback
        status.add_class("camlib-upload-status")
        view = W.Image(format="png")
        readout = W.HTML()
        readout.add_class("camlib-readout")
        thr.add_class("camlib-threshold")

        def refresh_classes():
            r = self.compute()
            rank.options = [
                (f"{i + 1}. {n} ({p:.3f})", i)
                for i, (n, p) in enumerate(zip(r["names"], r["probs"], strict=True))
            ]
            rank.value = min(self.state.rank, len(r["names"]) - 1)

        def redraw(*_):
            self.state = ExplorerState(
                image=image.value,
                model=model.value,
                rank=rank.value or 0,
                threshold=thr.value,
                rule=rule.value,
                upsample=ups.value,
            )
            view.value = self._png()
            readout.value = f"<b>{self.compute()['readout']}</b>"

        def new_input(*_):
            self.state.image, self.state.model, self.state.rank = image.value, model.value, 0
            refresh_classes()
            redraw()

        def on_upload(change):
            files = upload.value
            if not files:
                return
            f = files[0] if isinstance(files, (list, tuple)) else next(iter(files.values()))
            try:
                name = self.add_upload(f["name"], f["content"])
            except (OSError, ValueError) as exc:
                status.value = (
                    f"<span style='color:#b00'>could not use {html.escape(str(f['name']))}: "
                    f"{html.escape(str(exc))}</span>"
                )
                return
            status.value = f"added {html.escape(str(f['name']))}"
            image.options = list(self.images)
            image.value = name

        refresh_classes()
        redraw()
        for w in (rank, thr, rule, ups):
            w.observe(redraw, names="value")
        for w in (image, model):
            w.observe(new_input, names="value")
        upload.observe(on_upload, names="value")
        controls = W.VBox([W.HBox([image, model, upload]), status, W.HBox([rank, rule]), thr, ups, readout])
        self._upload_widgets = (upload, status, image)  # for tests: feed an upload, read the message
        return W.VBox([controls, view])

    def show(self, interactive: bool = True) -> None:
        """Display the widget when ``interactive`` and a front end is there, else a static figure (all
        models side by side when the explorer was made with ``compare=True``), kept in ``last_figure``.

        Returns None, so a notebook cell ending with this call shows the figure once, not twice."""
        if interactive:
            try:
                from IPython import get_ipython
                from IPython.display import display

                if get_ipython() is not None and get_ipython().__class__.__name__ == "ZMQInteractiveShell":
                    display(self.widget())
                    return None
            except ImportError:
                pass
        self.last_figure = self.compare_figure() if self.compare else self.figure()
        plt.show()
        return None
