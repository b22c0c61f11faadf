"""Exemplar crops: a record's image (EXIF orientation applied, RGB) cut to its crop box
(`mmovod.readers.exemplar_records.exemplar_crop_box`, which holds the geometry).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from mmovod.readers.exemplar_records import BadImageError, exemplar_crop_box
from mmovod.readers.image_roots import record_image_path
from mmovod.readers.photo_check import decoder_detail, has_alpha

log = logging.getLogger(__name__)

TTA_CONTEXT = 0.4
"""Context of `get_exemplars_tta` (the original value)."""
AGGREGATOR_CONTEXT = 0.2
"""Context of `generate_vision_classifier_agg` (the original value)."""


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
    """Decode an image, apply its EXIF orientation and convert it to RGB (grayscale, CMYK, palette; transparent
    parts flattened on white).

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
            rgb = flatten_on_white(ImageOps.exif_transpose(image))
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise BadImageError(p, f"cannot read image: {decoder_detail(exc)}") from None
    if scale == 1:
        return DecodedImage(rgb, rgb.size)
    origin = (full[0] - scale * rgb.width if orientation in _MIRRORED_X else 0,
              full[1] - scale * rgb.height if orientation in _MIRRORED_Y else 0)
    return DecodedImage(rgb, full, scale, origin)


SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
"""Pillow's modes of 16-bit grey images (PNG, TIFF); "I" is how some Pillow versions open a 16-bit PNG."""


def eight_bit(image: Image.Image) -> Image.Image:
    """A 16-bit grey image scaled to 8 bits (value / 257, so 65535 is 255); other images as they are.

    Pillow's own conversion of these modes to RGB clips at 255 instead of scaling: all but the darkest
    pixels of a 16-bit photo would turn white."""
    if image.mode not in SIXTEEN_BIT_MODES:
        return image
    values = np.asarray(image, dtype=np.float64) / 257.0
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")


def flatten_on_white(image: Image.Image) -> Image.Image:
    """`image` as RGB (16-bit grey scaled to 8 bits, `eight_bit`); transparent parts become white (a
    plain RGB conversion would keep whatever colour they hide)."""
    image = eight_bit(image)
    if not has_alpha(image):
        return image.convert("RGB")
    rgba = image.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def open_image(path: str | os.PathLike) -> Image.Image:
    """Decode an image fully, apply its EXIF orientation and convert it to RGB (see `decode_image`)."""
    return decode_image(path).image


def load_exemplar_crop(record: Mapping[str, Any], roots: Mapping[str, Path], context: float) -> Image.Image:
    """The RGB crop of one exemplar record (see the module docstring for the geometry)."""
    image = open_image(record_image_path(record, roots))
    return image.crop(exemplar_crop_box(record, image.width, image.height, context))
