"""Pascal VOC as multi-label image classification, and a synthetic tree in VOC's layout.

The layout (VOC2007 and VOC2012 alike):
    VOCdevkit/VOC2012/JPEGImages/<id>.jpg
    VOCdevkit/VOC2012/Annotations/<id>.xml       <object><name>dog</name><difficult>0</...>
    VOCdevkit/VOC2012/ImageSets/Main/train.txt   one id per line (also val.txt, trainval.txt)
An image's target is a multi-hot vector over the 20 classes: 1 for each class that one of its
objects belongs to. Only `object/name` counts: a person's `part` elements (head, hand, foot)
carry names too, but are not classes. Objects marked difficult count only with
use_difficult=True.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from minigrad.data.dataset import Dataset
from minigrad.data.download import extract_tar, fetch
from minigrad.data.images import open_labels, open_rgb

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)
_CLASS_INDEX = {name: i for i, name in enumerate(VOC_CLASSES)}


# VOC2012's trainval archive (1.9 GB): the official address, then a long-standing mirror; the
# MD5 is the one torchvision checks
VOC_ARCHIVES = {
    "2012": {"file": "VOCtrainval_11-May-2012.tar", "md5": "6cd6e144f989b92b3379bac3b3de84fd",
             "urls": ["http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
                      "https://pjreddie.com/media/files/VOCtrainval_11-May-2012.tar"]},
}


def download_voc(root, year: str = "2012", progress: bool = True) -> Path:
    """Make sure root/VOCdevkit/VOC<year> is there: nothing happens when the tree already is;
    else the trainval archive is downloaded into root (resuming a partial download, checked
    against its MD5) and unpacked safely. Returns the VOC<year> folder."""
    root = Path(root).expanduser()
    try:
        return find_voc_folder(root, year)
    except FileNotFoundError:
        pass
    if str(year) not in VOC_ARCHIVES:
        raise ValueError(f"VOCClassification: download=True knows VOC "
                         f"{', '.join(VOC_ARCHIVES)}, not {year}")
    archive = VOC_ARCHIVES[str(year)]
    path = fetch(archive["urls"], root / archive["file"], archive["md5"], progress=progress)
    extract_tar(path, root)
    return find_voc_folder(root, year)


def find_voc_folder(root, year: str) -> Path:
    """The VOC<year> folder, whether `root` is the folder holding VOCdevkit, VOCdevkit itself,
    or VOC<year> itself."""
    root = Path(root).expanduser()
    candidates = [root / "VOCdevkit" / f"VOC{year}", root / f"VOC{year}", root]
    for folder in candidates:
        if (folder / "ImageSets" / "Main").is_dir() and (folder / "JPEGImages").is_dir():
            return folder
    looked = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"VOCClassification: no VOC{year} tree (with JPEGImages/ and ImageSets/Main/) in "
        f"{looked}; point root at the folder holding VOCdevkit, at VOCdevkit, or at VOC{year}"
    )


def parse_annotation(path: Path, use_difficult: bool) -> np.ndarray:
    """The 20-long float32 multi-hot target of one annotation file."""
    try:
        tree = ET.parse(path)
    except ET.ParseError as error:
        raise ValueError(f"VOCClassification: malformed XML in {path}: {error}") from None
    except OSError as error:
        raise ValueError(f"VOCClassification: cannot read {path}: {error}") from None
    target = np.zeros(len(VOC_CLASSES), dtype=np.float32)
    for obj in tree.getroot().findall("object"):
        name_element = obj.find("name")  # a direct child: a part's <name> is one level deeper
        if name_element is None or not (name_element.text or "").strip():
            raise ValueError(f"VOCClassification: an object without a name in {path}")
        name = name_element.text.strip()
        if name not in _CLASS_INDEX:
            raise ValueError(f"VOCClassification: unknown class {name!r} in {path}; the 20 VOC "
                             f"classes are {', '.join(VOC_CLASSES)}")
        difficult = obj.find("difficult")
        if difficult is not None and (difficult.text or "0").strip() == "1" and not use_difficult:
            continue
        target[_CLASS_INDEX[name]] = 1.0
    return target


class VOCClassification(Dataset):
    """Pascal VOC multi-label classification: ds[i] is (image, target), where image is the
    RGB Pillow image (decoded by minigrad.data.images.open_rgb: 16-bit and transparent files
    too; or what `transform` makes of it) and target a float32 multi-hot array of
    the 20 classes (`VOC_CLASSES`). All annotations are read (and checked) when the dataset is
    made; `targets` (N, 20) holds them all, for class statistics such as pos_weight.
    download=True fetches VOC2012's trainval archive into root first, unless the tree is
    already there (see download_voc)."""

    classes = VOC_CLASSES

    def __init__(self, root, year: str = "2012", image_set: str = "train", transform=None,
                 use_difficult: bool = False, download: bool = False):
        if download:
            download_voc(root, str(year))
        self.folder = find_voc_folder(root, str(year))
        self.year, self.image_set, self.transform = str(year), image_set, transform
        listing = self.folder / "ImageSets" / "Main" / f"{image_set}.txt"
        if not listing.is_file():
            available = sorted(p.stem for p in listing.parent.glob("*.txt") if "_" not in p.stem)
            raise FileNotFoundError(f"VOCClassification: no image set {listing}; the sets here "
                                    f"are {available}")
        self.ids = [line.split()[0] for line in listing.read_text().splitlines() if line.strip()]
        if not self.ids:
            raise ValueError(f"VOCClassification: the image set {listing} lists no images")
        missing = [i for i in self.ids if not (self.folder / "JPEGImages" / f"{i}.jpg").is_file()
                   or not (self.folder / "Annotations" / f"{i}.xml").is_file()]
        if missing:
            raise FileNotFoundError(
                f"VOCClassification: {len(missing)} ids listed in {listing} have no JPEG or no "
                f"annotation, the first: {missing[0]} (expected "
                f"{self.folder / 'JPEGImages' / (missing[0] + '.jpg')} and "
                f"{self.folder / 'Annotations' / (missing[0] + '.xml')})"
            )
        self.targets = np.stack([
            parse_annotation(self.folder / "Annotations" / f"{i}.xml", use_difficult)
            for i in self.ids
        ])

    def __len__(self) -> int:
        return len(self.ids)

    def image_path(self, index: int) -> Path:
        return self.folder / "JPEGImages" / f"{self.ids[index]}.jpg"

    def __getitem__(self, index: int):
        image = open_rgb(self.image_path(index), "VOCClassification")
        if self.transform is not None:
            image = self.transform(image)
        return image, self.targets[index].copy()

    def __repr__(self) -> str:
        return (f"VOCClassification(VOC{self.year} {self.image_set}, {len(self)} images, "
                f"folder={str(self.folder)!r})")


# ---------------------------------------------------------------------------------------------
# a synthetic tree in VOC's layout

_SHAPES = ("disc", "square", "triangle", "cross", "ring")
_COLOURS = ((220, 40, 40), (40, 180, 60), (40, 80, 220), (230, 200, 30))


def _draw_object(draw: ImageDraw.ImageDraw, cls: int, box: tuple[int, int, int, int],
                 colour=None) -> None:
    """Class c is shape c // 4 in colour c % 4: twenty looks a small CNN can tell apart.
    (`colour`: draw the shape in that value instead, as on a label mask.)"""
    shape = _SHAPES[cls // 4]
    colour = _COLOURS[cls % 4] if colour is None else colour
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    if shape == "disc":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    elif shape == "triangle":
        draw.polygon([(x0 + w // 2, y0), (x1, y1), (x0, y1)], fill=colour)
    elif shape == "cross":
        draw.rectangle((x0 + w // 3, y0, x1 - w // 3, y1), fill=colour)
        draw.rectangle((x0, y0 + h // 3, x1, y1 - h // 3), fill=colour)
    else:
        draw.ellipse(box, outline=colour, width=max(2, w // 6))


def _annotation_xml(image_id: str, year: str, size: tuple[int, int], objects: list) -> str:
    height, width = size
    parts = [f"<annotation><folder>VOC{year}</folder><filename>{image_id}.jpg</filename>",
             f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>",
             "<segmented>0</segmented>"]
    for cls, (x0, y0, x1, y1), difficult in objects:
        name = VOC_CLASSES[cls]
        parts.append(f"<object><name>{name}</name><pose>Unspecified</pose>"
                     f"<truncated>0</truncated><difficult>{int(difficult)}</difficult>"
                     f"<bndbox><xmin>{x0 + 1}</xmin><ymin>{y0 + 1}</ymin><xmax>{x1}</xmax>"
                     f"<ymax>{y1}</ymax></bndbox>")
        if name == "person":  # persons carry parts whose names are not classes
            head = (x0 + 1, y0 + 1, x0 + max(2, (x1 - x0) // 3), y0 + max(2, (y1 - y0) // 3))
            parts.append("<part><name>head</name><bndbox><xmin>{}</xmin><ymin>{}</ymin>"
                         "<xmax>{}</xmax><ymax>{}</ymax></bndbox></part>".format(*head))
            parts.append(f"<part><name>hand</name><bndbox><xmin>{x0 + 1}</xmin>"
                         f"<ymin>{y1 - 2}</ymin><xmax>{x0 + 3}</xmax><ymax>{y1}</ymax>"
                         "</bndbox></part>")
        parts.append("</object>")
    return "".join(parts) + "</annotation>\n"


def make_synthetic_voc(root, n_images: int = 40, image_size: int | tuple[int, int] = 96,
                       seed: int = 0, year: str = "2012", val_fraction: float = 0.25) -> Path:
    """Write a small VOC-layout tree (see _write_synthetic_voc); an OS error while writing it
    (a full disk, a read-only folder) names the tree's folder."""
    try:
        return _write_synthetic_voc(root, n_images, image_size, seed, year, val_fraction)
    except OSError as error:
        raise OSError(error.errno, f"make_synthetic_voc: cannot write the tree under {root}: "
                      f"{error.strerror or error}"
                      + (f" ({error.filename})" if error.filename else "")) from None


def _write_synthetic_voc(root, n_images: int, image_size, seed: int, year: str,
                         val_fraction: float) -> Path:
    """Write a small VOC-layout tree under root/VOCdevkit/VOC<year> and return that folder.

    Each image shows 1 to 3 objects of distinct classes drawn as simple shapes on a noisy
    background (class c: shape c // 4 in colour c % 4); about one object in ten is marked
    difficult; persons carry head and hand parts. Written: JPEGImages, Annotations, and in
    ImageSets/Main the train/val/trainval lists and the per-class <class>_<set>.txt files
    (1 present, -1 absent, 0 present only as difficult), as the VOC devkit has them; and for
    segmentation, SegmentationClass/<id>.png (palette images: 0 background, 1 + the class
    index of each object, 255 on a one-pixel void band along every object's edge, as VOC's)
    with ImageSets/Segmentation/{train,val,trainval}.txt.
    """
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
    if n_images < 2 or min(height, width) < 16:
        raise ValueError("make_synthetic_voc: need at least 2 images of at least 16x16 pixels")
    rng = np.random.default_rng(seed)
    folder = Path(root) / "VOCdevkit" / f"VOC{year}"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main", "ImageSets/Segmentation",
                "SegmentationClass"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    ids, labels = [], []  # labels[i][c]: 1 present, 0 only difficult, -1 absent
    for n in range(n_images):
        image_id = f"{year}_{n + 1:06d}"
        background = rng.integers(90, 170, 3)
        pixels = np.clip(background + rng.normal(0, 12, (height, width, 3)), 0, 255)
        image = Image.fromarray(pixels.astype(np.uint8))
        draw = ImageDraw.Draw(image)
        labels_image = Image.new("L", (width, height), 0)
        label_draw = ImageDraw.Draw(labels_image)
        chosen = rng.choice(len(VOC_CLASSES), size=int(rng.integers(1, 4)), replace=False)
        objects = []
        for cls in chosen:
            side = int(rng.integers(min(height, width) // 4, min(height, width) // 2))
            x0, y0 = int(rng.integers(0, width - side)), int(rng.integers(0, height - side))
            box = (x0, y0, x0 + side, y0 + side)
            _draw_object(draw, int(cls), box)
            _draw_object(label_draw, int(cls), box, colour=int(cls) + 1)
            objects.append((int(cls), box, bool(rng.random() < 0.1)))
        image.save(folder / "JPEGImages" / f"{image_id}.jpg", quality=90)
        _segmentation_png(np.asarray(labels_image)).save(
            folder / "SegmentationClass" / f"{image_id}.png")
        (folder / "Annotations" / f"{image_id}.xml").write_text(
            _annotation_xml(image_id, year, (height, width), objects))
        row = np.full(len(VOC_CLASSES), -1)
        for cls, _, difficult in objects:
            row[cls] = max(row[cls], 0 if difficult else 1)
        ids.append(image_id)
        labels.append(row)
    n_val = max(1, int(round(n_images * val_fraction)))
    sets = {"train": list(range(n_images - n_val)), "val": list(range(n_images - n_val, n_images))}
    sets["trainval"] = sets["train"] + sets["val"]
    main = folder / "ImageSets" / "Main"
    for name, members in sets.items():
        (main / f"{name}.txt").write_text("".join(f"{ids[i]}\n" for i in members))
        (folder / "ImageSets" / "Segmentation" / f"{name}.txt").write_text(
            "".join(f"{ids[i]}\n" for i in members))
        for c, cls in enumerate(VOC_CLASSES):
            (main / f"{cls}_{name}.txt").write_text(
                "".join(f"{ids[i]} {labels[i][c]:2d}\n" for i in members))
    return folder


def voc_palette() -> list[int]:
    """VOC's colour map (768 values): label k's colour from the bits of k; 255 is near white."""
    palette = []
    for label in range(256):
        r = g = b = 0
        value = label
        for bit in range(8):
            r |= ((value >> 0) & 1) << (7 - bit)
            g |= ((value >> 1) & 1) << (7 - bit)
            b |= ((value >> 2) & 1) << (7 - bit)
            value >>= 3
        palette += [r, g, b]
    return palette


def _segmentation_png(labels: np.ndarray) -> Image.Image:
    """A label map as VOC stores it: a palette PNG, with 255 (void) along every edge between
    two labels."""
    labels = labels.astype(np.uint8).copy()
    edge = np.zeros(labels.shape, dtype=bool)
    edge[:-1] |= labels[:-1] != labels[1:]
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    labels[edge] = 255
    image = Image.fromarray(labels, mode="P")
    image.putpalette(voc_palette())
    return image


class VOCSegmentation(Dataset):
    """Pascal VOC semantic segmentation: ds[i] is (image, mask), the RGB Pillow image and its
    label map (a Pillow palette image: 0 background, 1-20 the classes of VOC_CLASSES in
    order, 255 the void border that losses and metrics ignore; any other value is an error
    naming the file), or what `transforms(image,
    mask)` makes of the pair (see minigrad.data.joint). download=True fetches VOC2012 first,
    as VOCClassification does."""

    classes = ("background",) + VOC_CLASSES

    def __init__(self, root, year: str = "2012", image_set: str = "train", transforms=None,
                 download: bool = False):
        if download:
            download_voc(root, str(year))
        self.folder = find_voc_folder(root, str(year))
        self.year, self.image_set, self.transforms = str(year), image_set, transforms
        listing = self.folder / "ImageSets" / "Segmentation" / f"{image_set}.txt"
        if not listing.is_file():
            raise FileNotFoundError(f"VOCSegmentation: no image set {listing} (VOC's "
                                    "segmentation sets are train, val and trainval)")
        self.ids = [line.split()[0] for line in listing.read_text().splitlines() if line.strip()]
        if not self.ids:
            raise ValueError(f"VOCSegmentation: the image set {listing} lists no images")
        missing = [i for i in self.ids if not self.image_path(i).is_file()
                   or not self.mask_path(i).is_file()]
        if missing:
            raise FileNotFoundError(
                f"VOCSegmentation: {len(missing)} ids listed in {listing} have no JPEG or no "
                f"mask, the first: {missing[0]} (expected {self.image_path(missing[0])} and "
                f"{self.mask_path(missing[0])})")

    def image_path(self, image_id: str) -> Path:
        return self.folder / "JPEGImages" / f"{image_id}.jpg"

    def mask_path(self, image_id: str) -> Path:
        return self.folder / "SegmentationClass" / f"{image_id}.png"

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int):
        image_id = self.ids[index]
        image_path, mask_path = self.image_path(image_id), self.mask_path(image_id)
        image = open_rgb(image_path, "VOCSegmentation", "image")
        mask = open_labels(mask_path, "VOCSegmentation", len(self.classes), ignore_index=255)
        if image.size != mask.size:
            raise ValueError(f"VOCSegmentation: the image {image_path} is "
                             f"{image.width}x{image.height} but its mask {mask_path} is "
                             f"{mask.width}x{mask.height}; they must be the same size")
        if self.transforms is not None:
            return self.transforms(image, mask)
        return image, mask

    def __repr__(self) -> str:
        return (f"VOCSegmentation(VOC{self.year} {self.image_set}, {len(self)} images, "
                f"folder={str(self.folder)!r})")
