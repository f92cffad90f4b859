"""An interactive CAM explorer for notebooks (ipywidgets), with a static fallback.

Pick an image, a model, a class from the top-k list, the threshold, the box rule and the upsampling
mode; the overlay, the box and the top-5 strip update at once. The forward pass runs once per
(model, image): the logits and features are cached, and a class's map is recomputed from them
(``M_c = sum_k w_k^c f_k``, an einsum of a few thousand numbers), so moving a slider never touches the
network.

With ``interactive=False`` (papermill, exported notebooks) or without a widget front end,
:meth:`CAMExplorer.show` draws one static figure with the current settings instead.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np
import torch

from camlib.boxes import paper_box
from camlib.cam import CAM, CAMOptions, postprocess
from camlib.models.imagenet import ImageNetModel
from camlib.viz import GT_COLOR, draw_box, overlay

__all__ = ["BOX_RULES", "CAMExplorer", "ExplorerState"]


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
    features: torch.Tensor  # (K, h, w), after the head's own ReLU if any
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
        models: dict[str, Callable[[], ImageNetModel]],
        gt_boxes: dict[str, np.ndarray] | None = None,
    ) -> None:
        if not images or not models:
            raise ValueError("the explorer needs at least one image and one model")
        self.images = {k: np.asarray(v) for k, v in images.items()}
        self.model_loaders = models
        self.gt_boxes = gt_boxes or {}
        self._models: dict[str, tuple[ImageNetModel, CAM]] = {}
        self._cache: dict[tuple[str, str], _Cached] = {}
        self.forward_passes = 0
        self.state = ExplorerState(image=next(iter(images)), model=next(iter(models)))

    # -- computation -----------------------------------------------------------------------------
    def _model(self, name: str) -> tuple[ImageNetModel, CAM]:
        if name not in self._models:
            net = self.model_loaders[name]()
            self._models[name] = (net, CAM(net.model))
        return self._models[name]

    def _features(self, image: str, model: str) -> _Cached:
        key = (model, image)
        if key not in self._cache:
            net, cam = self._model(model)
            x = net.preprocess(self.images[image])[None]
            out = cam(x, topk=1)
            self.forward_passes += 1
            f = out.features[0].relu() if out.head.relu else out.features[0]
            self._cache[key] = _Cached(out.logits[0].clone(), f.clone())
        return self._cache[key]

    def add_image(self, name: str, image) -> None:
        """Add an image (e.g. an uploaded file decoded with PIL) to the choices."""
        self.images[name] = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image)

    def compute(self, state: ExplorerState | None = None) -> dict:
        """Everything one view shows: top-k names/probabilities, the selected class's map and box."""
        s = state or self.state
        net, cam = self._model(s.model)
        cached = self._features(s.image, s.model)
        probs = cached.logits.softmax(0)
        top = probs.topk(s.topk).indices.tolist()
        c = top[min(s.rank, len(top) - 1)]
        fc = net.model.get_submodule(cam.head.fc_layer)
        w = fc.weight.detach().reshape(fc.weight.shape[0], -1)[c]
        raw = torch.einsum("khw,k->hw", cached.features, w)[None, None]
        img = self.images[s.image]
        opts = CAMOptions(upsample=s.upsample, size="original", normalize="max")
        m = postprocess(raw, opts, original_size=img.shape[:2])[0, 0].numpy()
        if m.shape != img.shape[:2]:  # upsample="none": show the raw grid stretched over the image
            m = postprocess(raw, CAMOptions(upsample="bilinear", size="original", normalize="max"),
                            original_size=img.shape[:2])[0, 0].numpy()
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
    def figure(self, state: ExplorerState | None = None) -> plt.Figure:
        s = state or self.state
        r = self.compute(s)
        img = self.images[s.image]
        fig = plt.figure(figsize=(9, 4.2))
        ax = fig.add_axes([0.0, 0.0, 0.58, 0.9])
        ax.imshow(overlay(img, r["map"]))
        for g in np.asarray(self.gt_boxes.get(s.image, np.zeros((0, 4)))).reshape(-1, 4):
            draw_box(ax, g, GT_COLOR)
        draw_box(ax, r["box"], label=f"{r['names'][min(s.rank, len(r['names']) - 1)]}")
        ax.set_title(f"{s.image} · {s.model} · t = {s.threshold:.2f}\n{r['readout']}", fontsize=9)
        ax.axis("off")
        bx = fig.add_axes([0.68, 0.12, 0.3, 0.7])
        colors = ["#00c853" if i == min(s.rank, len(r["names"]) - 1) else "#90a4ae" for i in range(len(r["names"]))]
        bx.barh(range(len(r["names"]))[::-1], r["probs"], color=colors)
        bx.set_yticks(range(len(r["names"]))[::-1], [n[:20] for n in r["names"]], fontsize=8)
        bx.set_xlim(0, 1)
        bx.set_title(f"top-{len(r['names'])} (softmax)", fontsize=9)
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
        model = W.Dropdown(options=list(self.model_loaders), value=s.model, description="model")
        rank = W.Dropdown(description="class", layout=W.Layout(width="340px"))
        thr = W.FloatSlider(value=s.threshold, min=0.05, max=0.95, step=0.05, description="threshold",
                            continuous_update=False)
        rule = W.Dropdown(options=list(BOX_RULES), value=s.rule, description="box rule")
        ups = W.ToggleButtons(options=["bilinear", "bicubic", "none"], value=s.upsample, description="upsample")
        upload = W.FileUpload(accept="image/*", multiple=False, description="upload")
        view = W.Image(format="png")
        readout = W.HTML()
        readout.add_class("camlib-readout")
        thr.add_class("camlib-threshold")

        def refresh_classes():
            r = self.compute()
            rank.options = [(f"{i + 1}. {n} ({p:.3f})", i) for i, (n, p) in enumerate(zip(r["names"], r["probs"], strict=True))]
            rank.value = min(self.state.rank, len(r["names"]) - 1)

        def redraw(*_):
            self.state = ExplorerState(image=image.value, model=model.value, rank=rank.value or 0,
                                       threshold=thr.value, rule=rule.value, upsample=ups.value)
            view.value = self._png()
            readout.value = f"<b>{self.compute()['readout']}</b>"

        def new_input(*_):
            self.state.image, self.state.model, self.state.rank = image.value, model.value, 0
            refresh_classes()
            redraw()

        def on_upload(change):
            from PIL import Image

            files = upload.value
            if not files:
                return
            f = files[0] if isinstance(files, (list, tuple)) else next(iter(files.values()))
            name = f"upload: {f['name']}"
            self.add_image(name, Image.open(io.BytesIO(bytes(f["content"]))))
            image.options = list(self.images)
            image.value = name

        refresh_classes()
        redraw()
        for w in (rank, thr, rule, ups):
            w.observe(redraw, names="value")
        for w in (image, model):
            w.observe(new_input, names="value")
        upload.observe(on_upload, names="value")
        controls = W.VBox([W.HBox([image, model, upload]), W.HBox([rank, rule]), thr, ups, readout])
        return W.VBox([controls, view])

    def show(self, interactive: bool = True):
        """Display the widget when ``interactive`` and a front end is there, else a static figure."""
        if interactive:
            try:
                from IPython import get_ipython
                from IPython.display import display

                if get_ipython() is not None and get_ipython().__class__.__name__ == "ZMQInteractiveShell":
                    display(self.widget())
                    return None
            except ImportError:
                pass
        fig = self.figure()
        plt.show()
        return fig
