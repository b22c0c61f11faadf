"""Classifier arrays on disk: atomic `.npy` writes, 2-D checked reads, and the provenance sidecar.

Every classifier `X.npy` gets `X.npy.json` beside it recording what made it (CLIP model and weights,
sources, normalisation, dtype, shape, category order, command line): a classifier made with another
CLIP is silently useless to a detector, so the sidecar lets tools and people check before use.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from mmovod.io.atomic import atomic_open, check_output_path
from mmovod.io.errors import InputError
from mmovod.io.json_files import dumps_json, load_json


def sidecar_path(npy_path: str | os.PathLike) -> Path:
    return Path(str(npy_path) + ".json")


def check_classifier_path(path: str | os.PathLike) -> Path:
    """`check_output_path` for a classifier `.npy` and its `.npy.json` sidecar (both are written)."""
    check_output_path(sidecar_path(path))
    return check_output_path(path)


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


def save_classifier(path: str | os.PathLike, array: np.ndarray, provenance: dict[str, Any]) -> None:
    """Write a classifier `.npy` and its `.npy.json` sidecar (shape, dtype, command line + `provenance`)."""
    check_classifier_path(path)
    meta = {
        "shape": list(array.shape),
        "dtype": str(array.dtype),
        **provenance,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }
    payload = dumps_json(meta, indent=True)
    save_npy(path, array)
    with atomic_open(sidecar_path(path), "wb") as handle:
        handle.write(payload)


def read_sidecar(npy_path: str | os.PathLike) -> dict[str, Any] | None:
    """The sidecar of `npy_path`, or None when there is none."""
    side = sidecar_path(npy_path)
    return load_json(side) if side.is_file() else None
