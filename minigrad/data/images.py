"""Decoding image files faithfully into 8-bit RGB, or into a map of labels, with errors that
name the file and what it is (a dataset's image, or its mask).

`Image.open(path).convert("RGB")` is right for 8-bit files and wrong, silently, for others:
- 16-bit grey (Pillow modes I;16, I;16B, ..., and I for a PNG on older Pillow): convert clips
  every value above 255, so nearly the whole image turns white. Here 0..65535 maps onto
  0..255 by keeping the high byte (v >> 8), as Pillow itself does for 16-bit colour PNGs, so
  that a grey and a colour 16-bit file of one scene decode alike.
- 32-bit grey (modes I and F, from TIFF): the range of the values (12 bits? 0..1?) is not
  recorded, so such a file is decoded only where every value is a whole number in 0..255,
  and refused otherwise.
- transparency (an alpha band, or a palette entry or colour marked transparent) is dropped,
  as convert("RGB") and so torchvision's loader drop it: a pipeline ported from PyTorch sees
  the same pixels (the colour stored under a transparent pixel).
- any other mode with no exact conversion to RGB (LAB, HSV, ...) is refused.
CMYK is converted by Pillow's formula (R = 255 - C - K, ...); an embedded colour profile is
not applied.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

# Pillow's convert("RGB") is exact for these (CMYK: by the formula above)
_EIGHT_BIT_MODES = {"1", "L", "P", "RGB", "RGBX", "CMYK", "YCbCr"}
_ALPHA_MODES = {"LA", "La", "PA", "RGBA", "RGBa"}
_SIXTEEN_BIT_GREY_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}

# what Pillow raises for a damaged, cut or unreadable file (UnidentifiedImageError is an OSError)
_DECODE_ERRORS = (OSError, ValueError, EOFError, SyntaxError)


def open_rgb(path, owner: str, what: str = "image") -> Image.Image:
    """The file at `path` as an 8-bit RGB Pillow image, decoded now. `owner` (the dataset's
    name) and `what` ("image", "mask") say in each error whose file it is."""
    path = Path(path)
    with _decoding(path, owner, what) as image:
        return _to_rgb(image, path, owner, what)


def open_labels(path, owner: str, num_classes: int, ignore_index: int,
                what: str = "mask") -> Image.Image:
    """The label map at `path` (a palette or grey PNG, as VOC's), decoded now and checked:
    every value is a class in 0..num_classes-1 or `ignore_index`."""
    path = Path(path)
    with _decoding(path, owner, what) as mask:
        if mask.mode not in ("P", "L"):
            raise ValueError(f"{owner}: the {what} {path} has Pillow mode {mask.mode}; a mask "
                             "must be a palette or grey image whose values are labels")
        mask.load()
        # one count per value 0..255: the labels a mask holds, found without a loop over pixels
        counts = np.bincount(np.asarray(mask).ravel(), minlength=256)
        counts[:num_classes] = 0
        counts[ignore_index] = 0
        if counts.any():
            bad = np.flatnonzero(counts)
            raise ValueError(
                f"{owner}: the {what} {path} holds the labels {bad[:10].tolist()} "
                f"({int(counts.sum())} pixels), outside the classes 0..{num_classes - 1} and "
                f"the void label {ignore_index}")
    return mask


@contextlib.contextmanager
def _decoding(path: Path, owner: str, what: str):
    """`with _decoding(path, owner, what) as image:` opens the file and turns the errors of
    decoding it, which in Pillow's words name no file, into ones that name it and say what it
    is."""
    where = f"{owner}: the {what} {path}"
    try:
        with Image.open(path) as image:
            _warn_if_large(image, path, owner, what)
            yield image
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        # (the warning arrives as an error where the user has turned warnings into errors)
        raise type(error)(
            f"{where}: {error} Pillow warns past PIL.Image.MAX_IMAGE_PIXELS "
            f"({Image.MAX_IMAGE_PIXELS}) pixels and refuses past twice that. If the file is "
            "trusted, raise the limit: PIL.Image.MAX_IMAGE_PIXELS = <pixels> (None lifts it)"
        ) from None
    except _DECODE_ERRORS as error:
        if str(error).startswith(f"{owner}: "):  # raised below, naming the file already
            raise
        raise ValueError(f"{owner}: cannot decode the {what} {path}: {error}") from None


def _warn_if_large(image: Image.Image, path: Path, owner: str, what: str) -> None:
    """Pillow's DecompressionBombWarning names no file: this one, given beside it, does."""
    limit = Image.MAX_IMAGE_PIXELS
    pixels = image.width * image.height
    if limit is not None and limit < pixels <= 2 * limit:
        warnings.warn(
            f"{owner}: the {what} {path} is {image.width}x{image.height} = {pixels} pixels, over "
            f"PIL.Image.MAX_IMAGE_PIXELS ({limit}): it could be a decompression bomb, and Pillow "
            f"refuses past {2 * limit}. If the file is trusted, raise PIL.Image.MAX_IMAGE_PIXELS",
            Image.DecompressionBombWarning, stacklevel=5)  # at the dataset's __getitem__


def _to_rgb(image: Image.Image, path: Path, owner: str, what: str) -> Image.Image:
    mode = image.mode
    if mode in _SIXTEEN_BIT_GREY_MODES or (mode == "I" and image.format == "PNG"):
        image = _sixteen_bit_grey(image)
    elif mode in ("I", "F"):
        image = _wide_grey(image, path, owner, what)
    elif mode not in _EIGHT_BIT_MODES | _ALPHA_MODES:
        raise ValueError(f"{owner}: the {what} {path} has Pillow mode {mode}, which has no exact "
                         "conversion to 8-bit RGB here; save it as 8-bit RGB or grey")
    return image.convert("RGB")  # (an alpha band dropped, as torchvision's loader drops it)


def _sixteen_bit_grey(image: Image.Image) -> Image.Image:
    """16-bit grey -> 8-bit grey (v >> 8)."""
    values = np.asarray(image).astype(np.int64)  # any byte order, and I's int32, alike
    return Image.fromarray((values >> 8).astype(np.uint8))


def _wide_grey(image: Image.Image, path: Path, owner: str, what: str) -> Image.Image:
    """32-bit integer or float grey -> 8-bit grey, where its values are already 0..255."""
    values = np.asarray(image)
    whole_bytes = (np.isfinite(values).all() and (values == np.round(values)).all()
                   and values.min() >= 0 and values.max() <= 255)
    if not whole_bytes:
        kind = "integer" if image.mode == "I" else "float"
        raise ValueError(
            f"{owner}: the {what} {path} is a 32-bit {kind} grey image (Pillow mode "
            f"{image.mode}) with values {values.min()}..{values.max()}; their range is not "
            "recorded in the file, so it cannot be turned into 8-bit RGB faithfully. Save it as "
            "an 8-bit or 16-bit PNG")
    return Image.fromarray(values.astype(np.uint8))
