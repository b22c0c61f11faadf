"""Every photo checked before any model loads: it decodes (a truncated JPEG is found here, not after CLIP
has loaded), its displayed size, and whether it has transparent parts (which the encoder flattens on white).

A JPEG is decoded at 1/8 scale by the decoder's DCT scaling (every byte of it is still read, so a cut
file fails), other formats in full. Photos are checked in a thread pool (Pillow's decoders release the
GIL), with a progress bar.
"""
from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from mmovod.readers.image_header import EXIF_ORIENTATION, TRANSPOSING_ORIENTATIONS

PLUGIN_FORMATS = {
    ".heic": "HEIC photos are read by the pillow-heif plugin, which mmovod does not load; convert them to JPEG",
    ".heif": "HEIF photos are read by the pillow-heif plugin, which mmovod does not load; convert them to JPEG",
    ".avif": "this Pillow reads no AVIF: install Pillow 11.3 or later, or convert the photos to JPEG",
}
"""Photo formats Pillow reads only with a plugin or a newer build: what the user can do about each."""
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


@dataclass(frozen=True)
class PhotoCheck:
    """What checking one photo found: `size` (width, height as displayed) or None with `problem` saying
    why it cannot be used; `alpha`: it has transparent parts."""

    size: tuple[int, int] | None
    problem: str | None = None
    alpha: bool = False


def has_alpha(image: Image.Image) -> bool:
    """True when `image` carries transparency (an alpha band, or a transparent palette or colour key)."""
    return image.mode in ALPHA_MODES or "transparency" in image.info


def decoder_detail(exc: BaseException) -> str:
    """The first line of a decoder's error, its closing parenthetical as a clause (no nested parentheses in messages)."""
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return re.sub(r" \(([^()]*)\)$", r": \1", detail)


def check_photo(path: str) -> PhotoCheck:
    """Decode `path` (JPEG at 1/8 scale) and return its displayed size and transparency, or why it cannot be read."""
    p = Path(path)
    if not p.is_file():
        return PhotoCheck(None, "image not found" if not p.exists() else "not a file")
    if p.stat().st_size == 0:
        return PhotoCheck(None, "empty file (0 bytes): copy the photo again")
    try:
        with Image.open(p) as image:
            width, height = image.size
            orientation = image.getexif().get(EXIF_ORIENTATION, 1)
            alpha = has_alpha(image)
            if image.format == "JPEG":
                image.draft(None, (max(1, width // 8), max(1, height // 8)))
            image.load()
    except UnidentifiedImageError:
        return PhotoCheck(None, PLUGIN_FORMATS.get(p.suffix.lower(), "cannot read image: not an image format Pillow knows"))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        return PhotoCheck(None, f"cannot read image: {decoder_detail(exc)}")
    if orientation in TRANSPOSING_ORIENTATIONS:
        width, height = height, width
    return PhotoCheck((width, height), None, alpha)


def check_photos(paths: Sequence[str], workers: int = 1, progress: bool = True) -> list[PhotoCheck]:
    """`check_photo` of every path, in order, over `workers` threads, with a progress bar."""
    with ThreadPoolExecutor(max(1, workers)) as pool, \
            tqdm(total=len(paths), desc="checking photos", unit="photo", disable=not progress or not paths) as bar:
        checks = []
        for check in pool.map(check_photo, paths):
            checks.append(check)
            bar.update(1)
    return checks
