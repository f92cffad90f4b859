"""Identities for cache keys: a hash of a model's weights and a hash of an array.

Both are short SHA-256 hex digests (16 digits): equal inputs give equal digests on every platform,
and any change of a value, dtype, shape (or parameter name) gives another one. Used by
:class:`camlib.core.features.FeatureCache` keys and by datasets naming a subset (indices, crop boxes).
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from torch import nn

__all__ = ["array_digest", "model_fingerprint"]


def model_fingerprint(model: nn.Module) -> str:
    """SHA-256 (first 16 hex digits) of a model's ``state_dict``: names, dtypes, shapes and values."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def array_digest(a) -> str:
    """SHA-256 (16 hex digits) of an array's dtype, shape and bytes: names a set of boxes in a cache key."""
    arr = np.ascontiguousarray(np.asarray(a))
    h = hashlib.sha256(f"{arr.dtype}|{arr.shape}|".encode())
    h.update(arr.tobytes())
    return h.hexdigest()[:16]
