"""Real photos that ship with scikit-image (no download): the quick profile's ImageNet-like inputs."""

from __future__ import annotations

import numpy as np

__all__ = ["PHOTOS", "load_photo", "load_photos"]

#: name -> what the photo shows (and the ImageNet classes one hopes to see)
PHOTOS = {
    "chelsea": "a tabby cat (tabby, tiger cat, Egyptian cat)",
    "coffee": "a cup of coffee on a saucer (espresso, cup)",
    "astronaut": "astronaut Eileen Collins with a flag and the Space Shuttle behind",
    "rocket": "a rocket on its launch pad (missile, projectile, space shuttle)",
}


def load_photo(name: str) -> np.ndarray:
    """An (H, W, 3) uint8 photo from ``skimage.data`` by name (see :data:`PHOTOS`)."""
    import skimage.data

    loader = getattr(skimage.data, name, None)
    if loader is None:
        raise ValueError(f"skimage.data has no photo {name!r}; try one of {sorted(PHOTOS)}")
    img = np.asarray(loader())
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3])


def load_photos(names=tuple(PHOTOS)) -> dict[str, np.ndarray]:
    return {n: load_photo(n) for n in names}
