"""The two figures of ``make bench``, drawn from the record ``benchmarks/bench.py`` writes."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from camlib.core.viz import save_figure  # noqa: E402

LABELS = {
    "plain": "plain forward",
    "camlib_top1": "camlib top-1 CAM @input",
    "camlib_all": "camlib all-class CAMs @features",
    "torchcam": "torchcam CAM",
    "gradcam": "pytorch-grad-cam GradCAM",
}


def plot_throughput(record: dict, folder: Path) -> Path:
    """Images/s per model and batch size for every method, and the sweep's maps/s."""
    models = list(dict.fromkeys(r["model"] for r in record["throughput"]))
    fig, axes = plt.subplots(1, len(models) + 1, figsize=(4.2 * (len(models) + 1), 3.8))
    for ax, name in zip(axes, models, strict=False):
        rows = [r for r in record["throughput"] if r["model"] == name]
        methods = [m for m in LABELS if m in rows[0]["methods"]]
        width = 0.8 / len(methods)
        for j, m in enumerate(methods):
            vals = [r["methods"][m]["images_per_s"] for r in rows]
            ax.bar(np.arange(len(rows)) + (j - (len(methods) - 1) / 2) * width, vals, width, label=LABELS[m])
        ax.set_xticks(range(len(rows)), [f"batch {r['batch']}" for r in rows])
        ax.set_yscale("log")
        ax.set_title(name)
        ax.set_ylabel("images / s (best round)")
    axes[0].legend(fontsize=7, loc="lower right")
    ax = axes[-1]
    sw = record["sweep"]
    kinds = [("vectorised_maps_per_s", "camlib vectorised sweep"), ("contour_loop_maps_per_s", "OpenCV contour loop"),
             ("skimage_loop_maps_per_s", "skimage label loop")]  # fmt: skip
    kinds = [k for k in kinds if k[0] in sw[0]]
    width = 0.8 / len(kinds)
    for j, (key, label) in enumerate(kinds):
        ax.bar(
            np.arange(len(sw)) + (j - (len(kinds) - 1) / 2) * width, [s[key] for s in sw], width, label=label
        )
    ax.set_xticks(range(len(sw)), [f"{s['thresholds']} thresholds" for s in sw])
    ax.set_yscale("log")
    ax.set_ylabel("maps / s (MaxBoxAcc + V2, 3 IoUs)")
    ax.set_title(f"threshold sweep, {sw[0]['size']}x{sw[0]['size']} maps")
    ax.legend(fontsize=7)
    m = record["machine"]
    fig.suptitle(
        f"make bench: {m.get('cpu') or m['platform']}, {record['threads']} torch threads", fontsize=9
    )
    fig.tight_layout()
    path = save_figure(fig, "bench_throughput", folder)
    plt.close(fig)
    return path


def plot_cost_growth(record: dict, folder: Path) -> Path:
    """Time per image and peak memory as batch size, image size and number of classes grow."""
    rows = record["cost_growth"]
    axes_names = list(dict.fromkeys(r["axis"] for r in rows))
    xlabel = {"batch": "batch size", "size": "image size (pixels)", "classes": "number of classes"}
    fig, axes = plt.subplots(2, len(axes_names), figsize=(4.2 * len(axes_names), 6.4), squeeze=False)
    for j, axis in enumerate(axes_names):
        sel = [r for r in rows if r["axis"] == axis]
        xs = [r["value"] for r in sel]
        for m in ("plain", "camlib_top1", "camlib_all"):
            axes[0, j].plot(xs, [r["methods"][m]["ms_per_image"] for r in sel], "o-", label=LABELS[m])
            mem = [r["methods"][m]["peak_mb"] for r in sel]
            if all(v is not None for v in mem):
                axes[1, j].plot(xs, mem, "o-", label=LABELS[m])
        for i in range(2):
            axes[i, j].set_xscale("log")
            axes[i, j].set_xticks(xs, [str(x) for x in xs])
            axes[i, j].minorticks_off()
            axes[i, j].set_xlabel(xlabel.get(axis, axis))
        axes[0, j].set_ylim(bottom=0)
        axes[1, j].set_ylim(bottom=0)
        axes[0, j].set_ylabel("ms per image (best round)")
        axes[1, j].set_ylabel("peak RSS increase (MiB)")
        base = {k: v for k, v in sel[0].items() if k in ("batch", "size", "classes") and k != axis}
        model = record["settings"]["growth_model"]
        axes[0, j].set_title(f"{model}, {', '.join(f'{k} {v}' for k, v in base.items())}", fontsize=9)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    path = save_figure(fig, "bench_cost_growth", folder)
    plt.close(fig)
    return path
