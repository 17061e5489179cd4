"""Transforms of an (image, mask) pair for segmentation: the same crop, flip and resize for
both, so that each pixel keeps its label; the image is resampled bilinearly, the mask by
nearest neighbour (a label is a class index: the mean of 3 and 7 is not class 5).

    pair = joint.Compose([joint.RandomResizedCrop(256), joint.RandomHorizontalFlip(),
                          joint.ToArrays(), joint.Normalize(mean, std)])
    image, mask = pair(image, mask)     # (3, H, W) float32 and (H, W) int64

Random draws come from the DataLoader's per-sample generator, as the other transforms'.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from minigrad.data import transforms as T


def _check_pair(image, mask, name: str) -> None:
    if not isinstance(image, Image.Image) or not isinstance(mask, Image.Image):
        raise TypeError(f"{name}: expected a Pillow image and a Pillow mask (before ToArrays), "
                        f"got {type(image).__name__} and {type(mask).__name__}")
    if image.size != mask.size:
        raise ValueError(f"{name}: the image ({image.width}x{image.height}) and its mask "
                         f"({mask.width}x{mask.height}) differ in size")


class Compose(T.Compose):
    def __call__(self, image, mask):
        for transform in self.transforms:
            image, mask = transform(image, mask)
        return image, mask


class Resize:
    """Both to (height, width), or the shorter side to an int size."""

    def __init__(self, size):
        self.image = T.Resize(size)

    def __call__(self, image, mask):
        _check_pair(image, mask, "joint.Resize")
        image = self.image(image)
        return image, mask.resize(image.size, Image.NEAREST)

    def __repr__(self) -> str:
        return f"joint.{self.image!r}"


class CenterCrop:
    def __init__(self, size):
        self.crop = T.CenterCrop(size)

    def __call__(self, image, mask):
        _check_pair(image, mask, "joint.CenterCrop")
        return self.crop(image), self.crop(mask)

    def __repr__(self) -> str:
        return f"joint.{self.crop!r}"


class RandomResizedCrop(T.RandomResizedCrop):
    """One random region, cut from both and resized to `size` (the mask by nearest)."""

    def __call__(self, image, mask):
        _check_pair(image, mask, "joint.RandomResizedCrop")
        top, left, h, w = self.region(image.height, image.width)
        box = (left, top, left + w, top + h)
        size = (self.size[1], self.size[0])
        return (image.resize(size, Image.BILINEAR, box=box),
                mask.resize(size, Image.NEAREST, box=box))


class RandomHorizontalFlip(T.RandomHorizontalFlip):
    def __call__(self, image, mask):
        _check_pair(image, mask, "joint.RandomHorizontalFlip")
        if self.rng().random() >= self.p:
            return image, mask
        return image.transpose(Image.FLIP_LEFT_RIGHT), mask.transpose(Image.FLIP_LEFT_RIGHT)


class ToArrays:
    """The image to a (C, H, W) float32 array in [0, 1]; the mask to (H, W) int64 labels."""

    def __call__(self, image, mask):
        mode = getattr(mask, "mode", None)
        if mode is not None and mode not in ("P", "L", "I", "I;16"):
            raise TypeError(f"joint.ToArrays: the mask is a Pillow image of mode {mode}; a mask "
                            "holds one label per pixel (a palette, grey or integer image)")
        labels = np.asarray(mask)
        if labels.ndim != 2 or labels.dtype.kind not in "biu":
            raise TypeError(f"joint.ToArrays: the mask must be (H, W) integer labels, got an "
                            f"array of shape {labels.shape} and dtype {labels.dtype}")
        return T.ToArray()(image), labels.astype(np.int64)

    def __repr__(self) -> str:
        return "joint.ToArrays()"


class Normalize:
    """Normalise the image's channels; the mask passes as it is."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        self.normalize = T.Normalize(mean, std)

    def __call__(self, image, mask):
        return self.normalize(image), mask

    def __repr__(self) -> str:
        return f"joint.{self.normalize!r}"
