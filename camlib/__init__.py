"""camlib: class activation maps (Zhou et al., CVPR 2016), the paper's experiments and their notebooks.

A notebook starts with one import::

    import camlib as cl

    RUN = cl.start_run("04_fine_grained_cub", globals())  # PROFILE checked, SEED set, clock started
    cam = cl.CAM(model)
    maps = cl.postprocess(cam(x).maps, cl.PAPER_OPTIONS)
    ...
    RUN.write_results(metrics=metrics, comparisons=comparisons)

The names below are the public core, re-exported LAZILY: ``import camlib`` imports nothing heavy (no
torch); ``cl.CAM`` imports :mod:`camlib.core.cam` on first use. Section code stays in its subpackage
(``camlib.paper.fine_grained``, ``camlib.datasets.cub``, ...) and is imported from there.
"""

from __future__ import annotations

import importlib

# public name -> the module that defines it (one place per concept; see each module for the details)
_EXPORTS: dict[str, str] = {
    # the CAM core
    **dict.fromkeys(
        (
            "CAM",
            "CAMOptions",
            "CAMResult",
            "HeadSpec",
            "PAPER_OPTIONS",
            "RELEASED_OPTIONS",
            "DISPLAY_OPTIONS",
            "NotCAMCompatibleError",
            "TargetError",
            "postprocess",
            "normalize_maps",
            "upsample_maps",
            "maps_from_features",
            "fc_weights",
            "select_classes",
            "eval_mode",
            "capture",
        ),
        "camlib.core.cam",
    ),
    # boxes from maps
    **dict.fromkeys(
        ("NO_BOX", "iou", "paper_box", "paper_boxes", "largest_component_box", "five_box_heuristic"),
        "camlib.core.boxes",
    ),
    # figures
    **dict.fromkeys(("overlay", "draw_box", "save_figure", "plot_cam_grid"), "camlib.core.viz"),
    # evaluators and statistics
    **dict.fromkeys(("ClassificationEvaluator", "LocalizationEvaluator"), "camlib.evaluation.metrics"),
    **dict.fromkeys(("BoxAccSweep", "PxAPEvaluator"), "camlib.evaluation.wsol"),
    **dict.fromkeys(("Estimate", "bootstrap_ci", "paired_diff_ci", "verdict"), "camlib.evaluation.stats"),
    # models and training
    **dict.fromkeys(("SmallGAPNet", "load_efficientnet_lite0", "load_torchvision"), "camlib.models"),
    **dict.fromkeys(("TrainConfig", "fit", "seed_everything"), "camlib.models.train"),
    # data
    **dict.fromkeys(("ProceduralShapes",), "camlib.datasets"),
    # the notebook front door
    **dict.fromkeys(("Run", "start_run"), "camlib.tools.run"),
    "missing_parameter": "camlib.tools.run_notebooks",
    "paper_values": "camlib.evaluation.paper_numbers",
    **dict.fromkeys(("write_results",), "camlib.tools.results"),
    "check": "camlib.tools.exercises",  # the check cell after each exercise: cl.check("02.1", globals())
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    """Import the defining module of a public name on first access (PEP 562) and cache the value."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'camlib' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
