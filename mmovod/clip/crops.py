"""Exemplar crops: a record's image (EXIF orientation applied, RGB) cut to its box with context.

Geometry (the original scripts'): ImageNet records, and `file` records without a `bbox`, use the
whole image. An LVIS (or `file`) box `[x, y, w, h]` becomes `[floor(x), floor(y), floor(w) + 1, floor(h) + 1]`; a Visual Genome record's `x, y, w, h`
are truncated to int. Around the box centre, w and h are scaled by (1 + context), the box is made
square with side max(w, h), clamped to the image and its four coordinates truncated to int. Boxes
that end up empty (zero size, or lying outside the image) are clamped to at least one pixel inside
the image instead of failing.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from mmovod.io.errors import InputError
from mmovod.readers.image_roots import FILE_DATASET, record_image_path

log = logging.getLogger(__name__)

TTA_CONTEXT = 0.4
"""Context of `get_exemplars_tta` (the original value)."""
AGGREGATOR_CONTEXT = 0.2
"""Context of `generate_vision_classifier_agg` (the original value)."""

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


@dataclass(frozen=True)
class DecodedImage:
    """An image as `decode_image` returns it: `image` (RGB, EXIF orientation applied) and, for mapping
    full-size coordinates onto it (x_decoded = (x - origin_x) / reduction): the oriented `full_size`
    (width, height) of the file, `reduction` (full-size pixels per decoded pixel: 1, or 2, 4, 8 for a
    JPEG decoded at a reduced scale) and `origin`, the full-size position of the decoded pixels'
    corner ((0, 0) but on an EXIF-mirrored axis whose size does not divide by the reduction)."""

    image: Image.Image
    full_size: tuple[int, int]
    reduction: int = 1
    origin: tuple[int, int] = (0, 0)


Reduction = Callable[[int, int], int]
"""(oriented full width, height) -> the reduction wanted: 1, 2, 4 or 8."""

_TRANSPOSED = (5, 6, 7, 8)  # EXIF orientations that swap width and height
_MIRRORED_X, _MIRRORED_Y = (2, 3, 6, 7), (3, 4, 7, 8)  # ... that reverse the oriented x or y axis


def decode_image(path: str | os.PathLike, reduction: Reduction | None = None) -> DecodedImage:
    """Decode an image, apply its EXIF orientation and convert it to RGB (grayscale, CMYK, RGBA, palette).

    With `reduction`, a JPEG is decoded at 1/r of its size by the decoder's DCT scaling (`Image.draft`),
    r = reduction(full width, full height); other formats are decoded at full size. Raises
    BadImageError naming the file when it is missing or cannot be decoded (corrupt, truncated).
    """
    p = Path(path)
    if not p.is_file():
        raise BadImageError(p, "image not found" if not p.exists() else "not a file")
    try:
        with Image.open(p) as image:
            scale, orientation, full = 1, None, None
            if reduction is not None and image.format == "JPEG":
                width, height = image.size
                orientation = image.getexif().get(ExifTags.Base.Orientation)
                full = (height, width) if orientation in _TRANSPOSED else (width, height)
                wanted = reduction(*full)
                if wanted > 1 and image.draft(None, (width // wanted, height // wanted)) is not None:
                    scale = image.decoderconfig[0]
            image.load()
            rgb = ImageOps.exif_transpose(image).convert("RGB")
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BadImageError(p, f"cannot read image ({detail})") from None
    if scale == 1:
        return DecodedImage(rgb, rgb.size)
    origin = (full[0] - scale * rgb.width if orientation in _MIRRORED_X else 0,
              full[1] - scale * rgb.height if orientation in _MIRRORED_Y else 0)
    return DecodedImage(rgb, full, scale, origin)


def open_image(path: str | os.PathLike) -> Image.Image:
    """Decode an image fully, apply its EXIF orientation and convert it to RGB (see `decode_image`)."""
    return decode_image(path).image


def load_exemplar_crop(record: Mapping[str, Any], roots: Mapping[str, Path], context: float) -> Image.Image:
    """The RGB crop of one exemplar record (see the module docstring for the geometry)."""
    image = open_image(record_image_path(record, roots))
    return image.crop(exemplar_crop_box(record, image.width, image.height, context))
