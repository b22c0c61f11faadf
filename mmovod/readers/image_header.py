"""Image sizes from file headers: no pixel is decoded, EXIF orientation is applied, files are read in parallel."""
from __future__ import annotations

import logging
import multiprocessing
import os
from typing import Iterator, Sequence

from PIL import Image, UnidentifiedImageError

log = logging.getLogger(__name__)

EXIF_ORIENTATION = 0x0112
# orientations 5..8 are rotations by 90 or 270 degrees: the displayed image swaps width and height
TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}


def header_size(path: str) -> tuple[int, int] | None:
    """(width, height) as displayed after the EXIF orientation, read from the header; None if unreadable.

    PIL's open() parses the header (for JPEG: the markers up to the first scan, which hold the
    frame size and the EXIF block) and decodes nothing.
    """
    try:
        with Image.open(path) as image:
            width, height = image.size
            if image.format == "JPEG" and "exif" not in image.info:
                return width, height
            orientation = image.getexif().get(EXIF_ORIENTATION, 1)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None  # unreadable, or a header claiming more pixels than PIL will ever decode
    if orientation in TRANSPOSING_ORIENTATIONS:
        return height, width
    return width, height


def header_sizes(paths: Sequence[str], workers: int, chunksize: int = 1024) -> Iterator[tuple[int, int] | None]:
    """header_size of every path, in order; `workers` > 1 spreads the reads over that many processes."""
    if workers <= 1 or len(paths) < 2 * chunksize:
        yield from map(header_size, paths)
        return
    ctx = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
    with ctx.Pool(workers) as pool:
        yield from pool.imap(header_size, paths, chunksize=chunksize)


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
