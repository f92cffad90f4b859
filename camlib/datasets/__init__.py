"""Datasets of camlib."""

from camlib.datasets.procedural import (
    CLASSES,
    DISTRACTOR_KINDS,
    PALETTE,
    PALETTE_NAMES,
    PART_NAMES,
    SPLIT_OFFSETS,
    ProceduralShapes,
    Sample,
    make_arrays,
    make_sample,
)

__all__ = [
    "CLASSES",
    "DISTRACTOR_KINDS",
    "PALETTE",
    "PALETTE_NAMES",
    "PART_NAMES",
    "SPLIT_OFFSETS",
    "ProceduralShapes",
    "Sample",
    "make_arrays",
    "make_sample",
]
