"""`.npy` arrays on disk: atomic writes and 2-D checked reads (classifier sidecars: `mmovod.classifiers.sidecar`)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mmovod.io.atomic import atomic_open
from mmovod.io.errors import InputError


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write `array` to `path` atomically (no half-written file on a crash or Ctrl-C)."""
    with atomic_open(path, "wb") as handle:
        np.save(handle, array, allow_pickle=False)


def load_matrix(path: str | os.PathLike) -> np.ndarray:
    """Read a 2-D numeric `.npy`, raising InputError naming the file when it is missing or not 2-D."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: file not found")
    try:
        array = np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"{p}: not a readable .npy array ({str(exc).splitlines()[0]})") from None
    if array.ndim != 2:
        raise InputError(f"{p}: expected a 2-D array (classes x dim), found shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise InputError(f"{p}: expected a real numeric array, found dtype {array.dtype}")
    return array
