"""Segmentation: VOC's SegmentationClass masks, transforms that move image and mask together,
IoU from a confusion matrix, and a U-Net that learns the synthetic set."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import minigrad as mg
from minigrad.data import DataLoader, VOCSegmentation, joint, make_synthetic_voc
from minigrad.metrics import iou_per_class, mean_iou, pixel_accuracy, segmentation_confusion


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("voc")
    make_synthetic_voc(root, n_images=24, image_size=48, seed=3)
    return root


def test_masks_are_palette_pngs_with_classes_and_a_void_border_matching_the_annotations(
        voc_root):
    train = VOCSegmentation(voc_root, image_set="train")
    assert len(train) == 18 and len(VOCSegmentation(voc_root, image_set="val")) == 6
    classes = mg.data.VOCClassification(voc_root, image_set="train", use_difficult=True)
    for k in range(len(train)):
        image, mask = train[k]
        assert mask.mode == "P" and image.size == mask.size
        labels = np.asarray(mask)
        assert 0 in labels and 255 in labels
        present = set(np.unique(labels).tolist()) - {0, 255}
        # the classes in the mask are annotated ones (a later object may hide part of an
        # earlier one; the last one drawn is always there)
        annotated = {int(c) + 1 for c in np.flatnonzero(classes.targets[k])}
        assert present and present <= annotated
        # two different labels never touch: a void band lies between them
        for a, b in ((labels[1:], labels[:-1]), (labels[:, 1:], labels[:, :-1])):
            touching = (a != 255) & (b != 255)
            assert (a[touching] == b[touching]).all()


def test_joint_transforms_move_image_and_mask_together_and_keep_labels(voc_root):
    pair = joint.Compose([joint.RandomResizedCrop(32, scale=(0.3, 1.0)),
                          joint.RandomHorizontalFlip(), joint.ToArrays(),
                          joint.Normalize([0.5] * 3, [0.25] * 3)])
    data = VOCSegmentation(voc_root, image_set="train", transforms=pair)
    loader = DataLoader(data, batch_size=4, shuffle=True, seed=0)
    images, masks = next(iter(loader))
    assert images.shape == (4, 3, 32, 32) and masks.shape == (4, 32, 32)
    assert masks.dtype == mg.int64
    # nearest for the mask: no label appears that was not a label (no blends like 127)
    assert set(np.unique(masks.numpy())) <= set(range(21)) | {255}
    # the same flip for both: a flipped pair is the flip of the pair
    image = Image.fromarray(np.arange(48 * 48 * 3, dtype=np.uint8).reshape(48, 48, 3))
    mask = Image.fromarray((np.arange(48 * 48) % 7).astype(np.uint8).reshape(48, 48), mode="P")
    flip = joint.RandomHorizontalFlip(p=1.0)
    flipped_image, flipped_mask = flip(image, mask)
    np.testing.assert_array_equal(np.asarray(flipped_mask), np.asarray(mask)[:, ::-1])
    np.testing.assert_array_equal(np.asarray(flipped_image), np.asarray(image)[:, ::-1])
    with pytest.raises(ValueError, match="differ in size"):
        flip(image, mask.resize((10, 10)))


def test_iou_from_the_confusion_matrix_ignores_void_pixels():
    target = np.array([[0, 0, 1, 1], [2, 2, 255, 255]])
    prediction = np.array([[0, 1, 1, 1], [2, 0, 2, 1]])
    confusion = segmentation_confusion(target, prediction, num_classes=3)
    np.testing.assert_array_equal(confusion, [[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    # class 0: TP 1, FP 1, FN 1 -> 1/3; class 1: 2 / 3; class 2: 1 / 2
    np.testing.assert_allclose(iou_per_class(confusion), [1 / 3, 2 / 3, 1 / 2])
    assert mean_iou(confusion) == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert pixel_accuracy(confusion) == pytest.approx(4 / 6)
    scores = np.eye(3)[prediction].transpose(2, 0, 1)[None]  # (1, 3, 2, 4) one-hot scores
    np.testing.assert_array_equal(segmentation_confusion(target[None], scores, 3), confusion)
    assert np.isnan(iou_per_class(np.zeros((2, 2)))).all()
    with pytest.raises(ValueError, match=r"target labels must lie in \[0, 3\)"):
        segmentation_confusion(np.array([5]), np.array([0]), 3)


def test_a_unet_learns_the_synthetic_segmentation_set(tmp_path):
    """The whole segmentation stack: synthetic VOC masks -> joint transforms -> U-Net ->
    cross-entropy ignoring void -> Adam -> mIoU, through fit (as the VOC classification test
    does for VGG-style nets)."""
    import minigrad.nn as nn
    from minigrad.training import evaluate, fit

    make_synthetic_voc(tmp_path, n_images=320, image_size=32, seed=0)
    pair = joint.Compose([joint.ToArrays(), joint.Normalize([0.5] * 3, [0.25] * 3)])
    train = VOCSegmentation(tmp_path, image_set="train", transforms=pair)
    val = DataLoader(VOCSegmentation(tmp_path, image_set="val", transforms=pair), 16)
    mg.manual_seed(0)
    model = mg.models.unet(21, width=16, depth=2)
    loss_fn = nn.CrossEntropyLoss(ignore_index=255)

    def miou(labels, targets):
        return mean_iou(segmentation_confusion(targets, labels, 21))

    _, labels, targets = evaluate(model, val, loss_fn, "cpu",
                                  output_transform=lambda scores: scores.argmax(1))
    before = miou(labels, targets)
    history = fit(model, mg.optim.Adam(model.parameters(), lr=3e-3), loss_fn,
                  DataLoader(train, 8, shuffle=True, seed=0), val, epochs=20, metric=miou,
                  metric_name="mIoU", progress=False,
                  output_transform=lambda scores: scores.argmax(1))
    after = max(r["val_metric"] for r in history)
    assert after > 0.25 and after > 3 * before, (before, after)
