"""`.npy` arrays on disk: atomic writes and checked reads (classifier sidecars: `mmovod.classifiers.sidecar`).

Every `.npy` read from outside goes through `load_npy`: the header is parsed first and checked (a
single `.npy`, not a `.npz` archive or a pickle; a plain numeric dtype; a shape whose bytes the file
really holds), so a crafted header claiming a (1e9, 512) array fails in one line instead of
allocating terabytes.
"""
from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np

from mmovod.io.atomic import atomic_open
from mmovod.io.errors import InputError

ZIP_MAGIC = b"PK\x03\x04"


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write `array` to `path` atomically (no half-written file on a crash or Ctrl-C)."""
    with atomic_open(path, "wb") as handle:
        np.save(handle, array, allow_pickle=False)


def npy_bytes(array: np.ndarray) -> bytes:
    """`array` as the bytes of a `.npy` file (for `write_files_together`)."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _header(p: Path) -> tuple[tuple[int, ...], np.dtype, bool, int]:
    """(shape, dtype, fortran order, data offset) from the header of the `.npy` at `p`."""
    try:
        with open(p, "rb") as handle:
            if handle.read(4) == ZIP_MAGIC:
                raise InputError(f"{p}: a .npz archive, expected a single .npy array")
            handle.seek(0)
            version = np.lib.format.read_magic(handle)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read(handle, max_header_size=1 << 16)
            return shape, dtype, fortran, handle.tell()
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as exc:
        lines = str(exc).splitlines()
        reason = getattr(exc, "strerror", None) or (lines[0] if lines else type(exc).__name__)
        raise InputError(f"{p}: not a readable .npy array ({reason})") from None


def _size(nbytes: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if nbytes < 1024 or unit == "TiB":
            return f"{nbytes:.0f} {unit}" if unit == "bytes" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return ""


def load_npy(path: str | os.PathLike, mmap: bool = False) -> np.ndarray:
    """A real numeric `.npy` array, read whole (or memory-mapped with `mmap`) only after its header is
    checked against the file: InputError naming the file when it is missing, a `.npz`, of another
    dtype (objects, strings, complex), or shorter or longer than its header's shape needs."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: {'is a folder, expected a .npy file' if p.is_dir() else 'file not found'}")
    shape, dtype, _, offset = _header(p)
    if dtype.fields is not None or not np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.complexfloating):
        raise InputError(f"{p}: expected a real numeric array, found dtype {dtype}")
    needed = math.prod(shape) * dtype.itemsize
    held = p.stat().st_size - offset
    if held != needed:
        raise InputError(f"{p}: not a readable .npy array (its header claims shape {tuple(shape)} {dtype}, "
                         f"{_size(needed)}, the file holds {_size(max(held, 0))} of data)")
    try:
        return np.load(p, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        lines = str(exc).splitlines()
        raise InputError(f"{p}: not a readable .npy array ({lines[0] if lines else type(exc).__name__})") from None


def load_matrix(path: str | os.PathLike, mmap: bool = False) -> np.ndarray:
    """Read a 2-D real numeric `.npy` (`load_npy`), raising InputError naming the file otherwise."""
    array = load_npy(path, mmap)
    if array.ndim != 2:
        raise InputError(f"{path}: expected a 2-D array (classes x dim), found shape {array.shape}")
    return array
