"""Which boxes are evaluated: the ground-truth boxes of an LVIS- or COCO-format file, as exemplar records.

Selection: every annotation with a `bbox` of positive width and height, not `iscrowd`, whose `area`
(the annotation's own `area` when present, else bbox w*h) is larger than `min_area` (strictly, as
the exemplar recipe's LVIS filter and lvis-api's area ranges); per category at most `max_per_class`
of them (0: all), chosen without replacement by `numpy.random.default_rng([seed, category_id])` and
kept in file order, so the choice of one class does not depend on any other class.

Images: `<img_dir>/<split>/<file>` from the last two parts of an image's `coco_url` (the LVIS layout,
e.g. `val2017/000000000139.jpg` under `datasets/coco/`), else `<img_dir>/<file_name>`. Each box
becomes a record `{"dataset": "lvis", "file_name": ..., "bbox": [x, y, w, h]}`, cropped by
`mmovod.clip.crops` exactly like an LVIS exemplar.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from mmovod.readers.class_sources import SourceClass
from mmovod.io.errors import InputError
from mmovod.io.wording import plural
from mmovod.readers.exemplar_records import BadImageError
from mmovod.readers.lvis_json import decode_fields, parse_categories
from mmovod.readers.photo_check import check_photos

log = logging.getLogger(__name__)

DEFAULT_MIN_AREA = 32 * 32
DEFAULT_MAX_PER_CLASS = 50
RECORD_DATASET = "lvis"
"""The image-root key of every record: the boxes are read with the LVIS exemplar geometry."""


class _Annotation(msgspec.Struct):
    image_id: int
    category_id: int
    bbox: list[float] | None = None
    area: float | None = None
    iscrowd: int = 0
    id: int | None = None


class _Image(msgspec.Struct):
    id: int
    coco_url: str | None = None
    file_name: str | None = None


class _BoxFile(msgspec.Struct):
    categories: msgspec.Raw
    images: list[_Image]
    annotations: list[_Annotation]


@dataclass(frozen=True)
class Category:
    """An evaluated vocabulary entry; `frequency` (r/c/f), `image_count` and `synonyms` where the file has them (LVIS)."""

    id: int
    name: str
    frequency: str | None = None
    image_count: int | None = None
    synonyms: tuple[str, ...] = ()


@dataclass
class EvalCrops:
    """The boxes to classify, grouped by category (ascending id), and what was left out.

    `classes[i].name` is the category id as a string; `classes[i].records` the chosen boxes.
    """

    ann_path: str
    img_dir: Path
    categories: list[Category]
    classes: list[SourceClass]
    missing_images: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def roots(self) -> dict[str, Path]:
        return {RECORD_DATASET: self.img_dir}

    @property
    def num_crops(self) -> int:
        return sum(len(c.records) for c in self.classes)

    def crop_category_ids(self) -> np.ndarray:
        """(N,) int64: the category id of every crop, in cache row order."""
        return np.repeat([int(c.name) for c in self.classes], [len(c.records) for c in self.classes]).astype(np.int64)

    def records(self) -> list[dict[str, Any]]:
        """Every crop's record, in cache row order."""
        return [r for c in self.classes for r in c.records]


def image_file_name(image: _Image, path: str) -> str:
    """An image's path relative to the image root (see the module docstring)."""
    if image.coco_url:
        return "/".join(image.coco_url.rsplit("/", 2)[-2:])
    if image.file_name:
        return image.file_name
    raise InputError(f"{path}: image {image.id} has neither 'coco_url' nor 'file_name'")


def _categories(raw: msgspec.Raw, path: str) -> list[Category]:
    out = []
    for cat in parse_categories(raw, path):
        name = cat.get("name")
        if not isinstance(name, str):
            raise InputError(f"{path}: category {cat['id']} has no 'name' string")
        freq = cat.get("frequency") if cat.get("frequency") in ("r", "c", "f") else None
        count = cat.get("image_count") if isinstance(cat.get("image_count"), int) else None
        synonyms = cat.get("synonyms") if isinstance(cat.get("synonyms"), list) else []
        out.append(Category(cat["id"], name, freq, count, tuple(s for s in synonyms if isinstance(s, str))))
    ids = [c.id for c in out]
    if len(set(ids)) != len(ids):
        raise InputError(f"{path}: category ids are not unique")
    return sorted(out, key=lambda c: c.id)


def select_boxes(ann_path: str | os.PathLike, img_dir: str | os.PathLike, *, min_area: float = DEFAULT_MIN_AREA,
                 max_per_class: int = DEFAULT_MAX_PER_CLASS, seed: int = 0, skip_bad: bool = False,
                 workers: int = 1) -> EvalCrops:
    """The boxes of `ann_path` to classify (see the module docstring), every image checked to exist.

    A missing image raises InputError naming the first (and the count) unless `skip_bad`, which
    decodes every image (`check_photos`, in `workers` threads), drops the boxes of those missing or
    unreadable and lists them in `missing_images`. A file with no usable box is an InputError.
    """
    path = str(ann_path)
    if min_area < 0 or max_per_class < 0 or seed < 0:
        raise InputError("--min-area, --max-per-class and --seed must not be negative")
    doc = decode_fields(path, _BoxFile)
    categories = _categories(doc.categories, path)
    known = {c.id for c in categories}
    files = {img.id: image_file_name(img, path) for img in doc.images}
    by_class: dict[int, list[dict[str, Any]]] = {}
    counts = {"annotations": len(doc.annotations), "without_box": 0, "crowd": 0, "small": 0}
    for index, ann in enumerate(doc.annotations):
        if ann.category_id not in known:
            raise InputError(f"{path}: annotation #{index} has category_id {ann.category_id}, which is not a category")
        if ann.image_id not in files:
            raise InputError(f"{path}: annotation #{index} has image_id {ann.image_id}, which is not an image")
        box = ann.bbox
        if box is None or len(box) != 4 or not all(map(math.isfinite, box)) or box[2] <= 0 or box[3] <= 0:
            counts["without_box"] += 1
            continue
        if ann.iscrowd:
            counts["crowd"] += 1
            continue
        area = ann.area if ann.area is not None else box[2] * box[3]
        if area <= min_area:
            counts["small"] += 1
            continue
        by_class.setdefault(ann.category_id, []).append({
            "dataset": RECORD_DATASET, "file_name": files[ann.image_id], "bbox": list(box),
            "category_id": ann.category_id, "image_id": ann.image_id, "id": ann.id if ann.id is not None else index,
        })
    if counts["without_box"] == len(doc.annotations):
        raise InputError(f"{path}: no annotation has a bounding box ('bbox' [x, y, w, h] with w, h > 0); "
                         "evaluation needs a detection set such as lvis_v1_val.json")
    if not by_class:
        raise InputError(f"{path}: no box passes the filters ({counts['small']} not larger than --min-area {min_area:g}, "
                         f"{counts['crowd']} crowd)")
    img_root = Path(img_dir)
    used = {r["file_name"] for records in by_class.values() for r in records}
    if skip_bad:  # unreadable images too: the encoder would stop at the first
        names = sorted(used)
        checks = check_photos([str(img_root / name) for name in names], workers)
        missing = [name for name, check in zip(names, checks) if check.problem]
    else:
        missing = sorted(name for name in used if not (img_root / name).is_file())
    if missing and not skip_bad:
        raise BadImageError(img_root / missing[0], f"image not found, the first of "
                            f"{plural(len(missing), 'image', 'images')} of {path} missing under {img_dir}")
    if missing:
        gone = set(missing)
        log.warning("leaving out the boxes of %d missing or unreadable images (first: %s)", len(missing),
                    img_root / missing[0])
        by_class = {c: [r for r in records if r["file_name"] not in gone] for c, records in by_class.items()}
    classes = []
    for cat_id in sorted(by_class):
        records = by_class[cat_id]
        if max_per_class and len(records) > max_per_class:
            chosen = np.sort(np.random.default_rng([seed, cat_id]).choice(len(records), max_per_class, replace=False))
            records = [records[i] for i in chosen]
        if records:
            classes.append(SourceClass(str(cat_id), records))
    if not classes:
        raise InputError(f"{path}: every box lies in a missing or unreadable image")
    counts["crops"] = sum(len(c.records) for c in classes)
    return EvalCrops(path, img_root, categories, classes, missing, counts)
