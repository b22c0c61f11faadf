"""Exemplar record geometry: a record's integer box and its square crop box with context, and the
error for an exemplar image that cannot be used.

Geometry (the original scripts'): ImageNet records, and `file` records without a `bbox`, use the
whole image. An LVIS (or `file`) box `[x, y, w, h]` becomes `[floor(x), floor(y), floor(w) + 1, floor(h) + 1]`; a Visual Genome record's `x, y, w, h`
are truncated to int. Around the box centre, w and h are scaled by (1 + context), the box is made
square with side max(w, h), clamped to the image and its four coordinates truncated to int. Boxes
that end up empty (zero size, or lying outside the image) are clamped to at least one pixel inside
the image instead of failing.
"""
from __future__ import annotations

import math
import os
from typing import Any, Mapping

from mmovod.io.errors import InputError
from mmovod.readers.image_roots import FILE_DATASET

Box = tuple[int, int, int, int]


class BadImageError(InputError):
    """An exemplar image that cannot be used (missing, corrupt, unreadable); names the file."""

    def __init__(self, path: str | os.PathLike, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def _number(record: Mapping[str, Any], key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"exemplar record {record.get('file_name')!r}: '{key}' must be a finite number, found {value!r}")
    return float(value)


def _check_size(record: Mapping[str, Any], w: float, h: float) -> None:
    if w < 0 or h < 0:
        raise InputError(f"{record.get('dataset')} exemplar record {record.get('file_name')!r}: box width {w} and "
                         f"height {h} must not be negative")


def record_box(record: Mapping[str, Any]) -> tuple[int, int, int, int] | None:
    """The integer `(x, y, w, h)` box of a record, or None for a whole-image (ImageNet) record."""
    dataset = record.get("dataset")
    if dataset == "imagenet21k" or (dataset == FILE_DATASET and record.get("bbox") is None):
        return None
    if dataset in ("lvis", FILE_DATASET):
        bbox = record.get("bbox")
        if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
            raise InputError(f"{dataset} exemplar record {record.get('file_name')!r}: 'bbox' must be [x, y, w, h], found {bbox!r}")
        x, y, w, h = (_number(record, "bbox", v) for v in bbox)
        _check_size(record, w, h)
        return math.floor(x), math.floor(y), math.floor(w) + 1, math.floor(h) + 1
    if dataset == "visual_genome":
        x, y, w, h = (_number(record, k, record.get(k)) for k in ("x", "y", "w", "h"))
        _check_size(record, w, h)
        return int(x), int(y), int(w), int(h)
    raise InputError(f"unknown exemplar dataset {dataset!r} (expected lvis, imagenet21k, visual_genome or file)")


def check_box(record: Mapping[str, Any], where: str) -> None:
    """InputError `where: <what is wrong with the box>` when `record_box` refuses the record's box."""
    try:
        record_box(record)
    except InputError as exc:
        raise InputError(f"{where}: {str(exc).split(': ', 1)[-1]}") from None


def exemplar_crop_box(record: Mapping[str, Any], image_width: int, image_height: int, context: float) -> Box:
    """The crop `(left, upper, right, lower)` of `record` in an image of this size (after EXIF orientation).

    Always a non-empty box inside the image: 0 <= left < right <= width, 0 <= upper < lower <= height.
    """
    box = record_box(record)
    if box is None:
        return 0, 0, image_width, image_height
    x, y, w, h = box
    cx, cy = x + w / 2.0, y + h / 2.0
    side = max(w * (1.0 + context), h * (1.0 + context))
    left, right = max(0.0, cx - side / 2.0), min(float(image_width), cx + side / 2.0)
    upper, lower = max(0.0, cy - side / 2.0), min(float(image_height), cy + side / 2.0)
    left, upper, right, lower = int(left), int(upper), int(right), int(lower)
    left = min(left, image_width - 1)
    upper = min(upper, image_height - 1)
    return left, upper, max(right, left + 1), max(lower, upper + 1)
