"""Image transforms, torchvision-style, on Pillow images and NumPy arrays.

Geometric transforms (Resize, crops, flip) take a Pillow image or an array laid out as
(C, H, W) or (H, W) and return the same kind. `ToArray` turns an image (or an (H, W[, C])
uint8 array) into a (C, H, W) float32 array in [0, 1]; `Normalize` works on that.

Random transforms draw from a generator: the one given to them (`generator=`), or, inside a
DataLoader, one the loader makes for each sample from its seed, the epoch and the sample's
index, so that a seeded run is the same whatever the number of worker threads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from minigrad import checks
from minigrad.backend import sample_generator, sample_rng  # noqa: F401  (sample_generator: the loader's)
from minigrad.data.dataset import _loader_rng


class RandomTransform:
    """Base of the random transforms: `self.rng()` is the generator to draw from."""

    def __init__(self, generator: np.random.Generator | None = None):
        self.generator = generator

    def rng(self) -> np.random.Generator:
        current = sample_rng()
        if current is not None:
            return current
        if self.generator is None:
            self.generator = _loader_rng(None)
        return self.generator


def _size_pair(size, name: str) -> tuple[int, int]:
    """(height, width) from an int (a square) or a pair."""
    pair = (size, size) if isinstance(size, int) else tuple(size)
    if len(pair) != 2 or not all(isinstance(s, int) and s > 0 for s in pair):
        raise ValueError(f"{name}: size must be a positive int or (height, width), got {size!r}")
    return pair


def _image_size(image, name: str) -> tuple[int, int]:
    """(height, width) of a Pillow image or a (C, H, W) / (H, W) array."""
    if isinstance(image, Image.Image):
        return image.height, image.width
    if isinstance(image, np.ndarray) and image.ndim in (2, 3):
        return image.shape[-2:]
    got = image.shape if isinstance(image, np.ndarray) else type(image).__name__
    raise TypeError(f"{name}: expected a Pillow image or a (C, H, W) or (H, W) array, got {got}")


def _crop(image, top: int, left: int, height: int, width: int):
    if isinstance(image, Image.Image):
        return image.crop((left, top, left + width, top + height))
    return image[..., top:top + height, left:left + width]


def _resize(image, size: tuple[int, int], box=None):
    """Bilinear resize to (height, width), of the region `box` (left, top, right, bottom)."""
    height, width = size
    if isinstance(image, Image.Image):
        return image.resize((width, height), Image.BILINEAR, box=box)
    channels = image[None] if image.ndim == 2 else image
    resized = np.stack([
        np.asarray(Image.fromarray(c.astype(np.float32), mode="F").resize(
            (width, height), Image.BILINEAR, box=box))
        for c in channels
    ]).astype(image.dtype if image.dtype.kind == "f" else np.float32)
    return resized[0] if image.ndim == 2 else resized


class Compose:
    """Apply transforms one after the other."""

    def __init__(self, transforms: Sequence):
        self.transforms = list(transforms)

    def __call__(self, image):
        for transform in self.transforms:
            image = transform(image)
        return image

    def __repr__(self) -> str:
        return "Compose(\n" + "".join(f"    {t!r}\n" for t in self.transforms) + ")"


def _pixel_values(image: Image.Image) -> tuple[np.ndarray, np.float32]:
    """A Pillow image's values, (H, W[, C]), and the factor that brings them into [0, 1]."""
    if image.mode in ("P", "PA", "I", "F"):
        held = ("palette indices, not colours: convert('RGB') it first (a segmentation mask "
                "goes through joint.ToArrays, which keeps its labels)" if "P" in image.mode else
                "32-bit values of no recorded range: bring them to uint8 first")
        raise TypeError(f"ToArray: a Pillow image of mode {image.mode} holds {held}")
    if image.mode == "1":
        image = image.convert("L")  # as bools, white would become 1/255
    if image.mode.startswith("I;16"):
        return np.asarray(image), np.float32(1 / 65535)
    return np.asarray(image), np.float32(1 / 255)


class ToArray:
    """A Pillow image or an (H, W[, C]) uint8 array -> a (C, H, W) float32 array in [0, 1].
    (A 16-bit grey image is scaled by 1/65535; palette and 32-bit images are refused.)"""

    def __call__(self, image) -> np.ndarray:
        scale = np.float32(1 / 255)
        if isinstance(image, Image.Image):
            array, scale = _pixel_values(image)
        elif isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim in (2, 3):
            array = image
        else:
            got = (f"an array of shape {image.shape} and dtype {image.dtype}"
                   if isinstance(image, np.ndarray) else type(image).__name__)
            raise TypeError(f"ToArray: expected a Pillow image or an (H, W[, C]) uint8 array, "
                            f"got {got}")
        if array.ndim == 2:
            array = array[:, :, None]
        chw = np.empty((array.shape[2], array.shape[0], array.shape[1]), dtype=np.float32)
        np.multiply(array.transpose(2, 0, 1), scale, out=chw)
        return chw

    def __repr__(self) -> str:
        return "ToArray()"


class Normalize:
    """(x - mean) / std per channel, on a (C, H, W) float array."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        self.mean = np.asarray(mean, dtype=np.float32).reshape(-1, 1, 1)
        self.std = np.asarray(std, dtype=np.float32).reshape(-1, 1, 1)
        if self.mean.shape != self.std.shape or (self.std == 0).any():
            raise ValueError(f"Normalize: mean {mean} and std {std} must have one non-zero "
                             "value per channel")

    def __call__(self, array: np.ndarray) -> np.ndarray:
        channels = self.mean.shape[0]
        if (not isinstance(array, np.ndarray) or array.ndim != 3 or array.dtype.kind != "f"
                or array.shape[0] not in (channels, 1) and channels != 1):
            got = (f"shape {array.shape} and dtype {array.dtype}" if isinstance(array, np.ndarray)
                   else type(array).__name__)
            raise ValueError(f"Normalize: expected a float (C, H, W) array with C={channels} "
                             f"(after ToArray), got {got}")
        return (array - self.mean) / self.std

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.ravel().tolist()}, std={self.std.ravel().tolist()})"


class Resize:
    """Resize to (height, width), or, for an int, so that the shorter side has that size."""

    def __init__(self, size):
        self.size = size if isinstance(size, int) else _size_pair(size, "Resize")
        if isinstance(size, int) and size <= 0:
            raise ValueError(f"Resize: size must be positive, got {size}")

    def __call__(self, image):
        height, width = _image_size(image, "Resize")
        if isinstance(self.size, int):
            short = min(height, width)
            size = (round(height * self.size / short), round(width * self.size / short))
        else:
            size = self.size
        return _resize(image, size)

    def __repr__(self) -> str:
        return f"Resize(size={self.size})"


class CenterCrop:
    """The central (height, width) region."""

    def __init__(self, size):
        self.size = _size_pair(size, "CenterCrop")

    def __call__(self, image):
        height, width = _image_size(image, "CenterCrop")
        th, tw = self.size
        if th > height or tw > width:
            raise ValueError(f"CenterCrop: crop {self.size} is larger than the image "
                             f"({height}, {width})")
        return _crop(image, (height - th) // 2, (width - tw) // 2, th, tw)

    def __repr__(self) -> str:
        return f"CenterCrop(size={self.size})"


def _pad(image, padding: int):
    if isinstance(image, Image.Image):
        return ImageOps.expand(image, border=padding, fill=0)
    widths = [(0, 0)] * (image.ndim - 2) + [(padding, padding)] * 2
    return np.pad(image, widths)


class RandomCrop(RandomTransform):
    """A (height, width) region at a random place, after zero-padding each side by `padding`."""

    def __init__(self, size, padding: int = 0, generator=None):
        super().__init__(generator)
        self.size, self.padding = _size_pair(size, "RandomCrop"), padding

    def __call__(self, image):
        if self.padding:
            image = _pad(image, self.padding)
        height, width = _image_size(image, "RandomCrop")
        th, tw = self.size
        if th > height or tw > width:
            raise ValueError(f"RandomCrop: crop {self.size} is larger than the (padded) image "
                             f"({height}, {width})")
        rng = self.rng()
        top, left = int(rng.integers(0, height - th + 1)), int(rng.integers(0, width - tw + 1))
        return _crop(image, top, left, th, tw)

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomResizedCrop(RandomTransform):
    """A random region with an area of `scale` times the image's and an aspect ratio in
    `ratio` (log-uniform), resized to `size` (torchvision's algorithm: 10 tries, then the
    central crop of the nearest allowed ratio)."""

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), generator=None):
        super().__init__(generator)
        for name, (low, high) in (("scale", scale), ("ratio", ratio)):
            checks.number("RandomResizedCrop", name, low, low=0, low_open=True)
            if not low <= checks.number("RandomResizedCrop", name, high):
                raise ValueError(f"RandomResizedCrop: {name} must be (min, max), got "
                                 f"{(low, high)}")
        self.size, self.scale, self.ratio = _size_pair(size, "RandomResizedCrop"), scale, ratio

    def region(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(top, left, h, w) of the region to crop."""
        rng, area = self.rng(), height * width
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * rng.uniform(*self.scale)
            aspect = math.exp(rng.uniform(*log_ratio))
            w = round(math.sqrt(target * aspect))
            h = round(math.sqrt(target / aspect))
            if 0 < w <= width and 0 < h <= height:
                top, left = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
                return int(top), int(left), h, w
        aspect = width / height
        if aspect < min(self.ratio):
            w, h = width, round(width / min(self.ratio))
        elif aspect > max(self.ratio):
            h, w = height, round(height * max(self.ratio))
        else:
            h, w = height, width
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, image):
        top, left, h, w = self.region(*_image_size(image, "RandomResizedCrop"))
        return _resize(image, self.size, box=(left, top, left + w, top + h))

    def __repr__(self) -> str:
        return f"RandomResizedCrop(size={self.size}, scale={self.scale}, ratio={self.ratio})"


class RandomHorizontalFlip(RandomTransform):
    """Mirror left-right with probability p."""

    def __init__(self, p: float = 0.5, generator=None):
        super().__init__(generator)
        self.p = checks.number(type(self).__name__, "p", p, low=0, high=1)

    def __call__(self, image):
        _image_size(image, "RandomHorizontalFlip")
        if self.rng().random() >= self.p:
            return image
        if isinstance(image, Image.Image):
            return image.transpose(Image.FLIP_LEFT_RIGHT)
        return image[..., ::-1].copy()

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class ColorJitter(RandomTransform):
    """Scale brightness, contrast and saturation by random factors in [1 - x, 1 + x], in a
    random order (as torchvision). On Pillow RGB images, or (3, H, W) float arrays in [0, 1]."""

    def __init__(self, brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0,
                 generator=None):
        super().__init__(generator)
        for name, value in (("brightness", brightness), ("contrast", contrast),
                            ("saturation", saturation)):
            if value < 0:
                raise ValueError(f"ColorJitter: {name} must be >= 0, got {value}")
        self.brightness, self.contrast, self.saturation = brightness, contrast, saturation

    def __call__(self, image):
        rng = self.rng()
        is_array = isinstance(image, np.ndarray)
        if is_array and (image.ndim != 3 or image.shape[0] != 3):
            raise ValueError(f"ColorJitter: expected an RGB image or a (3, H, W) array, got "
                             f"shape {image.shape}")
        for which in rng.permutation(3):
            amount = (self.brightness, self.contrast, self.saturation)[which]
            if not amount:
                continue
            factor = float(rng.uniform(max(0.0, 1 - amount), 1 + amount))
            image = (_jitter_array if is_array else _jitter_image)(image, which, factor)
        return image

    def __repr__(self) -> str:
        return (f"ColorJitter(brightness={self.brightness}, contrast={self.contrast}, "
                f"saturation={self.saturation})")


def _jitter_image(image: Image.Image, which: int, factor: float) -> Image.Image:
    enhancer = (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color)[which]
    return enhancer(image).enhance(factor)


def _jitter_array(array: np.ndarray, which: int, factor: float) -> np.ndarray:
    """The same blends as Pillow's enhancers: towards black, the mean grey, or the grey image."""
    gray = (0.299 * array[0] + 0.587 * array[1] + 0.114 * array[2]).astype(array.dtype)
    if which == 0:
        base = np.zeros_like(array)
    elif which == 1:
        base = np.full_like(array, gray.mean())
    else:
        base = np.broadcast_to(gray, array.shape)
    return np.clip(base + factor * (array - base), 0, 1).astype(array.dtype)
