"""Each transform really transforms: a flip flips, a crop crops where it says, on Pillow images
and on arrays; random ones repeat under the same generator."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from minigrad.data import transforms as T


def gradient_image(height=6, width=8) -> Image.Image:
    """An RGB image whose pixel (r, c) is (10 r, 10 c, 77): every pixel says where it is."""
    rows, cols = np.mgrid[0:height, 0:width]
    pixels = np.stack([rows * 10, cols * 10, np.full_like(rows, 77)], axis=-1)
    return Image.fromarray(pixels.astype(np.uint8))


def test_to_array_makes_chw_float32_in_0_1():
    array = T.ToArray()(gradient_image())
    assert array.shape == (3, 6, 8) and array.dtype == np.float32
    assert array[0, 2, 5] == pytest.approx(20 / 255) and array[1, 2, 5] == pytest.approx(50 / 255)
    gray = T.ToArray()(np.full((4, 5), 255, dtype=np.uint8))
    assert gray.shape == (1, 4, 5) and (gray == 1).all()
    with pytest.raises(TypeError, match="ToArray: expected a Pillow image.*float64"):
        T.ToArray()(np.zeros((4, 5)))


def test_normalize_per_channel_and_its_shape_check():
    array = np.ones((2, 3, 3), dtype=np.float32)
    out = T.Normalize([0.5, 1.0], [0.5, 2.0])(array)
    assert (out[0] == 1.0).all() and (out[1] == 0.0).all() and out.dtype == np.float32
    with pytest.raises(ValueError, match=r"Normalize: expected a float \(C, H, W\) array with "
                                         r"C=2.*shape \(3, 3, 2\)"):
        T.Normalize([0.5, 1.0], [0.5, 2.0])(np.ones((3, 3, 2), dtype=np.float32))


def test_horizontal_flip_mirrors_columns():
    image = gradient_image()
    flipped = T.RandomHorizontalFlip(p=1.0)(image)
    np.testing.assert_array_equal(np.asarray(flipped), np.asarray(image)[:, ::-1])
    assert T.RandomHorizontalFlip(p=0.0)(image) is image
    array = T.ToArray()(image)
    np.testing.assert_array_equal(T.RandomHorizontalFlip(p=1.0)(array), array[:, :, ::-1])


def test_center_crop_takes_the_middle():
    crop = np.asarray(T.CenterCrop((2, 4))(gradient_image()))
    assert crop.shape == (2, 4, 3)
    assert crop[0, 0, 0] == 20 and crop[0, 0, 1] == 20  # top-left is pixel (2, 2)
    array = np.arange(2 * 6 * 8).reshape(2, 6, 8)
    np.testing.assert_array_equal(T.CenterCrop(2)(array), array[:, 2:4, 3:5])
    with pytest.raises(ValueError, match="larger than the image"):
        T.CenterCrop(10)(gradient_image())


def test_random_crop_crops_where_its_generator_says_with_padding():
    image = gradient_image()
    crop = np.asarray(T.RandomCrop(3, generator=np.random.default_rng(0))(image))
    rng = np.random.default_rng(0)
    top, left = int(rng.integers(0, 4)), int(rng.integers(0, 6))
    np.testing.assert_array_equal(crop, np.asarray(image)[top:top + 3, left:left + 3])
    padded = T.RandomCrop((8, 10), padding=1)(image)  # the whole padded image
    pixels = np.asarray(padded)
    assert (pixels[0] == 0).all() and (pixels[:, 0] == 0).all()
    np.testing.assert_array_equal(pixels[1:-1, 1:-1], np.asarray(image))


def test_resize_to_a_size_or_the_shorter_side():
    assert T.Resize((3, 4))(gradient_image()).size == (4, 3)
    assert T.Resize(3)(gradient_image(6, 8)).size == (4, 3)  # PIL sizes are (width, height)
    resized = T.Resize((3, 4))(np.ones((2, 6, 8), dtype=np.float32))
    assert resized.shape == (2, 3, 4) and np.allclose(resized, 1)


def test_random_resized_crop_resizes_the_region_it_draws():
    rows, cols = np.mgrid[0:40, 0:40]
    image = Image.fromarray(np.stack([rows * 6, cols * 6, rows * 0], -1).astype(np.uint8))
    for seed in range(5):
        out = T.RandomResizedCrop((4, 4), scale=(0.25, 0.5),
                                  generator=np.random.default_rng(seed))(image)
        top, left, h, w = T.RandomResizedCrop((4, 4), scale=(0.25, 0.5),
                                              generator=np.random.default_rng(seed)).region(40, 40)
        assert out.size == (4, 4) and 0.25 * 1600 * 0.8 <= h * w <= 0.5 * 1600 * 1.2
        pixels = np.asarray(out).astype(int)  # R = 6 * source row, G = 6 * source column
        assert 6 * top - 6 <= pixels[..., 0].min() and pixels[..., 0].max() <= 6 * (top + h)
        assert 6 * left - 6 <= pixels[..., 1].min() and pixels[..., 1].max() <= 6 * (left + w)
        assert pixels[-1, 0, 0] - pixels[0, 0, 0] > 6 * h / 2  # the region is stretched, not cut


def test_color_jitter_changes_colours_within_its_range():
    image = gradient_image()
    same = T.ColorJitter()(image)
    np.testing.assert_array_equal(np.asarray(same), np.asarray(image))
    darker = T.ColorJitter(brightness=(0.5))(image)
    assert np.asarray(darker).shape == (6, 8, 3)
    array = T.ToArray()(image)
    jittered = T.ColorJitter(0.5, 0.5, 0.5, generator=np.random.default_rng(1))(array)
    assert jittered.shape == array.shape and not np.allclose(jittered, array)
    assert jittered.min() >= 0 and jittered.max() <= 1
    with pytest.raises(ValueError, match=r"ColorJitter: expected an RGB image or a \(3, H, W\)"):
        T.ColorJitter(0.5)(np.zeros((1, 4, 4), dtype=np.float32))


def test_random_transforms_repeat_with_the_same_generator():
    pipeline = lambda seed: T.Compose([  # noqa: E731
        T.RandomResizedCrop(5, generator=np.random.default_rng(seed)),
        T.RandomHorizontalFlip(generator=np.random.default_rng(seed)),
        T.ToArray(),
    ])
    image = gradient_image(20, 20)
    np.testing.assert_array_equal(pipeline(1)(image), pipeline(1)(image))
    assert any(not np.array_equal(pipeline(1)(image), pipeline(s)(image)) for s in range(2, 6))


def test_geometric_transforms_refuse_what_is_not_an_image():
    with pytest.raises(TypeError, match=r"RandomHorizontalFlip: expected a Pillow image or a "
                                        r"\(C, H, W\) or \(H, W\) array, got \(2, 2, 2, 2\)"):
        T.RandomHorizontalFlip()(np.zeros((2, 2, 2, 2)))
