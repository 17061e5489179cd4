"""Faults in image and label files (issue 20): every decode path gives the right 8-bit RGB
image, or an error that names the file and says whether it is the image or the mask.

The trees are VOC's real layout, written by make_synthetic_voc; a test then replaces one
image or mask with the faulty file."""

import gzip
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from minigrad.data import (
    DataLoader,
    FashionMNIST,
    VOCClassification,
    VOCSegmentation,
    make_synthetic_voc,
    read_idx,
)
from minigrad.data import transforms as T
from minigrad.data.voc import voc_palette

SIXTEEN_BIT = np.array([[0, 255, 256, 5000], [30000, 40000, 65280, 65535]], dtype=np.uint16)


@pytest.fixture
def voc(tmp_path):
    """A 2-image VOC tree (16x16); ds.ids[0] of the train set is the one the tests spoil."""
    folder = make_synthetic_voc(tmp_path, n_images=2, image_size=16)
    image_id = (folder / "ImageSets" / "Main" / "train.txt").read_text().split()[0]
    return tmp_path, folder / "JPEGImages" / f"{image_id}.jpg", \
        folder / "SegmentationClass" / f"{image_id}.png"


def write_png(path, values: np.ndarray, colour_type: int, extra_chunks=()) -> None:
    """A PNG written by hand (big-endian samples, one filter byte per row), for the bit depths
    and chunks Pillow does not write. values: (H, W) or (H, W, C) uint8 or uint16."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc
    height, width = values.shape[:2]
    depth = 16 if values.dtype == np.uint16 else 8
    samples = values.astype(">u2" if depth == 16 else np.uint8).reshape(height, -1)
    rows = b"".join(b"\x00" + row.tobytes() for row in samples)
    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + b"".join(chunk(kind, data) for kind, data in extra_chunks)
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def rgb(image: Image.Image) -> np.ndarray:
    assert image.mode == "RGB"
    return np.asarray(image)


# ---- 16-bit and 32-bit grey -----------------------------------------------------------------

def _save_grey16(path, mode: str) -> None:
    if mode == "I;16":  # a 16-bit grey PNG: Pillow opens it as I;16
        write_png(path, SIXTEEN_BIT, colour_type=0)
    else:  # a big-endian 16-bit TIFF, named .jpg as VOC names every image (Pillow reads content)
        Image.frombytes("I;16B", SIXTEEN_BIT.shape[::-1], SIXTEEN_BIT.astype(">u2").tobytes()) \
            .save(path, format="TIFF")
    with Image.open(path) as image:
        assert image.mode == mode


@pytest.mark.parametrize("mode", ["I;16", "I;16B"])
def test_a_16_bit_grey_image_keeps_its_high_byte_instead_of_turning_white(voc, mode):
    root, image_path, _ = voc
    _save_grey16(image_path, mode)
    image, _ = VOCClassification(root)[0]
    expected = (SIXTEEN_BIT >> 8).astype(np.uint8)
    np.testing.assert_array_equal(rgb(image), np.repeat(expected[:, :, None], 3, axis=2))


def test_a_16_bit_colour_png_keeps_its_high_byte_too(voc):
    root, image_path, _ = voc
    colour = np.stack([SIXTEEN_BIT, SIXTEEN_BIT[::-1], 65535 - SIXTEEN_BIT], axis=-1)
    write_png(image_path, colour, colour_type=2)
    image, _ = VOCClassification(root)[0]
    np.testing.assert_array_equal(rgb(image), colour >> 8)


def test_a_16_bit_grey_png_with_a_transparent_value_keeps_its_grey_there(voc):
    """Transparency is dropped, as torchvision's loader (convert("RGB")) drops it."""
    root, image_path, _ = voc
    write_png(image_path, SIXTEEN_BIT, colour_type=0,
              extra_chunks=[(b"tRNS", struct.pack(">H", 40000))])
    image, _ = VOCClassification(root)[0]
    np.testing.assert_array_equal(rgb(image)[:, :, 0], (SIXTEEN_BIT >> 8).astype(np.uint8))


def test_a_32_bit_grey_image_within_0_255_is_decoded_exactly(voc):
    root, image_path, _ = voc
    values = np.array([[0, 7], [128, 255]], dtype=np.int32)
    Image.fromarray(values).save(image_path, format="TIFF")
    image, _ = VOCClassification(root)[0]
    np.testing.assert_array_equal(rgb(image)[:, :, 1], values)


@pytest.mark.parametrize("values, mode", [
    (np.array([[0, 300], [4095, 9]], dtype=np.int32), "I"),
    (np.array([[0.0, 0.5], [1.0, 0.25]], dtype=np.float32), "F"),
])
def test_a_32_bit_grey_image_of_unknown_range_is_refused_by_name(voc, values, mode):
    root, image_path, _ = voc
    Image.fromarray(values).save(image_path, format="TIFF")
    with pytest.raises(ValueError, match=rf"VOCClassification: the image .*{image_path.name} is "
                                         rf"a 32-bit .* \(Pillow mode {mode}\)"):
        VOCClassification(root)[0]


# ---- transparency, CMYK, other modes --------------------------------------------------------

def test_grey_with_alpha_drops_the_alpha_as_torchvision_does(voc):
    root, image_path, _ = voc
    grey_alpha = np.array([[[200, 255], [200, 0]], [[100, 128], [50, 255]]], dtype=np.uint8)
    Image.fromarray(grey_alpha).save(image_path, format="PNG")
    image, _ = VOCClassification(root)[0]
    np.testing.assert_array_equal(rgb(image)[:, :, 0], [[200, 200], [100, 50]])


def test_a_transparent_palette_entry_keeps_its_colour_as_torchvision_does(voc):
    root, image_path, _ = voc
    palette_image = Image.fromarray(np.array([[0, 1], [1, 0]], dtype=np.uint8), mode="P")
    palette_image.putpalette([255, 0, 255, 10, 200, 30] + [0, 0, 0] * 254)  # 0: magenta key
    palette_image.save(image_path, format="PNG", transparency=0)
    image, _ = VOCClassification(root)[0]
    np.testing.assert_array_equal(rgb(image), [[[255, 0, 255], [10, 200, 30]],
                                               [[10, 200, 30], [255, 0, 255]]])


def test_a_cmyk_jpeg_becomes_its_rgb_colours(voc):
    root, image_path, _ = voc
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(image_path, quality=100)
    image, _ = VOCClassification(root)[0]
    assert np.abs(rgb(image).astype(int) - [255, 0, 0]).max() <= 2


def test_a_mode_with_no_exact_rgb_conversion_is_refused_by_name(voc):
    root, image_path, _ = voc
    Image.new("RGB", (4, 4), (200, 30, 30)).convert("LAB").save(image_path, format="TIFF")
    with pytest.raises(ValueError, match=rf"the image .*{image_path.name} has Pillow mode LAB"):
        VOCClassification(root)[0]


# ---- decompression bombs ------------------------------------------------------------------

def test_a_decompression_bomb_image_names_the_file_its_size_the_limit_and_the_way_out(
        voc, monkeypatch):
    root, image_path, _ = voc
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # the image is 16x16 = 256 > 2 x 100
    with pytest.raises(Image.DecompressionBombError) as caught:
        VOCSegmentation(root)[0]
    message = str(caught.value)
    assert f"VOCSegmentation: the image {image_path}" in message
    assert "256 pixels" in message and "200 pixels" in message
    assert "PIL.Image.MAX_IMAGE_PIXELS (100)" in message and "If the file is trusted" in message


@pytest.mark.filterwarnings("ignore:Image size .* could be decompression bomb")  # Pillow's own
def test_a_decompression_bomb_mask_is_named_as_the_mask(voc, monkeypatch):
    root, _, mask_path = voc
    Image.new("P", (16, 40), 0).save(mask_path)  # 640 pixels; the image has 256
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200)
    with pytest.warns(Image.DecompressionBombWarning, match="the image .* 256 pixels"):
        with pytest.raises(Image.DecompressionBombError,
                           match=rf"the mask {mask_path}: .*640 pixels.*400 pixels"):
            VOCSegmentation(root)[0]


@pytest.mark.filterwarnings("ignore:Image size .* could be decompression bomb")  # Pillow's own
def test_a_large_image_s_warning_names_the_file_and_becomes_a_named_error_if_asked(
        voc, monkeypatch):
    root, image_path, _ = voc
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200)
    with pytest.warns(Image.DecompressionBombWarning, match=rf"the image {image_path} is 16x16"):
        VOCClassification(root)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(Image.DecompressionBombWarning, match=rf"the image {image_path}: "):
            VOCClassification(root)[0]


# ---- truncated files, bad masks -------------------------------------------------------------

def test_a_truncated_image_is_named_as_the_image(voc):
    root, image_path, _ = voc
    image_path.write_bytes(image_path.read_bytes()[: image_path.stat().st_size // 2])
    with pytest.raises(ValueError, match=rf"VOCSegmentation: cannot decode the image "
                                         rf"{image_path}: (?i:.*truncated)"):
        VOCSegmentation(root)[0]
    with pytest.raises(ValueError, match=rf"VOCClassification: cannot decode the image "
                                         rf"{image_path}"):
        VOCClassification(root)[0]


def test_a_truncated_mask_is_named_as_the_mask_also_through_the_loader(voc):
    root, _, mask_path = voc
    mask_path.write_bytes(mask_path.read_bytes()[: mask_path.stat().st_size // 2])
    with pytest.raises(ValueError, match=rf"VOCSegmentation: cannot decode the mask {mask_path}: "
                                         "(?i:.*truncated)"):
        VOCSegmentation(root)[0]
    with pytest.raises(RuntimeError, match=r"loading sample 0 .*failed: VOCSegmentation: cannot "
                                           rf"decode the mask {mask_path}"):
        list(DataLoader(VOCSegmentation(root), 1))


def test_a_mask_of_another_size_names_both_files(voc):
    root, image_path, mask_path = voc
    Image.new("P", (16, 12), 0).save(mask_path)
    with pytest.raises(ValueError, match=rf"the image {image_path} is 16x16 but its mask "
                                         rf"{mask_path} is 16x12"):
        VOCSegmentation(root)[0]


def test_a_mask_with_labels_outside_the_21_classes_and_void_is_named(voc):
    root, _, mask_path = voc
    labels = np.zeros((16, 16), dtype=np.uint8)
    labels[0, :3] = [21, 30, 255]  # 255 is void and fine; 21 and 30 are not classes
    mask = Image.fromarray(labels, mode="P")
    mask.putpalette(voc_palette())  # with no full palette, Pillow's PNG writer renumbers values
    mask.save(mask_path)
    with pytest.raises(ValueError, match=rf"the mask {mask_path} holds the labels \[21, 30\] "
                                         r"\(2 pixels\), outside the classes 0..20"):
        VOCSegmentation(root)[0]


def test_a_colour_mask_is_named(voc):
    root, _, mask_path = voc
    Image.new("RGB", (16, 16), (128, 0, 0)).save(mask_path)
    with pytest.raises(ValueError, match=rf"the mask {mask_path} has Pillow mode RGB"):
        VOCSegmentation(root)[0]


def test_a_good_tree_still_decodes_to_rgb_images_and_valid_masks(voc):
    root, _, _ = voc
    image, mask = VOCSegmentation(root)[0]
    assert image.mode == "RGB" and mask.mode == "P" and image.size == mask.size
    assert set(np.unique(np.asarray(mask))) <= set(range(21)) | {255}


# ---- MNIST's IDX files ----------------------------------------------------------------------

def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist(folder, images: bytes, labels: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(images))
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))


def test_idx_files_cut_short_or_with_a_wrong_magic_number_are_named(tmp_path):
    images = idx_bytes(np.zeros((3, 28, 28)))
    packed = gzip.compress(images)
    (tmp_path / "cut.gz").write_bytes(packed[: len(packed) // 2])
    with pytest.raises(ValueError, match=r"read_idx: cannot read .*cut\.gz"):
        read_idx(tmp_path / "cut.gz")
    (tmp_path / "magic.gz").write_bytes(gzip.compress(b"\x00\x00\x0b\x03" + images[4:]))
    with pytest.raises(ValueError, match=r"magic\.gz is not an IDX file .*00000b03"):
        read_idx(tmp_path / "magic.gz")


def test_a_damaged_deflate_stream_is_named_not_a_bare_zlib_error(tmp_path):
    damaged = bytearray(gzip.compress(idx_bytes(np.zeros((3, 28, 28)))))
    damaged[10] = 0xFF  # the first deflate block's type becomes 11, which does not exist
    (tmp_path / "damaged.gz").write_bytes(bytes(damaged))
    with pytest.raises(ValueError, match=r"read_idx: cannot read .*damaged\.gz: .*invalid block"):
        read_idx(tmp_path / "damaged.gz")


def test_a_gzipped_idx_file_without_gz_in_its_name_says_so(tmp_path):
    (tmp_path / "plain").write_bytes(gzip.compress(idx_bytes(np.zeros((3, 28, 28)))))
    with pytest.raises(ValueError, match=r"plain is not an IDX file.*gzip-compressed: name it "
                                         r"with \.gz"):
        read_idx(tmp_path / "plain")


def test_a_label_file_with_a_label_past_the_classes_is_named(tmp_path):
    write_mnist(tmp_path, idx_bytes(np.zeros((3, 28, 28))), idx_bytes(np.array([1, 12, 3])))
    with pytest.raises(ValueError, match=r"FashionMNIST: .*train-labels-idx1-ubyte\.gz holds the "
                                         r"label 12, but there are 10 classes"):
        FashionMNIST(tmp_path, download=False)


# ---- ToArray on Pillow images ---------------------------------------------------------------

def test_to_array_scales_1_bit_and_16_bit_images_into_0_1():
    white = T.ToArray()(Image.new("1", (3, 2), 1))
    np.testing.assert_array_equal(white, np.ones((1, 2, 3), dtype=np.float32))
    grey16 = Image.fromarray(SIXTEEN_BIT)
    assert grey16.mode == "I;16"
    array = T.ToArray()(grey16)
    assert array.dtype == np.float32 and array.shape == (1, 2, 4)
    np.testing.assert_allclose(array[0], SIXTEEN_BIT / 65535, rtol=1e-6)


@pytest.mark.parametrize("image, held", [
    (Image.new("P", (2, 2), 3), "palette indices"),
    (Image.fromarray(np.array([[0, 4095]], dtype=np.int32)), "32-bit values"),
    (Image.fromarray(np.array([[0.5]], dtype=np.float32)), "32-bit values"),
])
def test_to_array_refuses_images_whose_values_are_not_intensities(image, held):
    with pytest.raises(TypeError, match=f"ToArray: a Pillow image of mode {image.mode} holds "
                                        f"{held}"):
        T.ToArray()(image)
