"""Multi-modal classifier fusion: L2-normalise two classifiers row-wise, add, optionally re-normalise."""
from __future__ import annotations

import os

import numpy as np

from .errors import InputError


def check_finite_nonzero(array: np.ndarray, path: str | os.PathLike) -> None:
    """Raise InputError naming the first row that holds NaN/inf or is all zeros (it cannot be normalised)."""
    bad = ~np.isfinite(array).all(axis=1)
    if bad.any():
        raise InputError(f"{path}: row {int(np.flatnonzero(bad)[0])} holds NaN or infinite values")
    zero = ~array.any(axis=1)
    if zero.any():
        raise InputError(f"{path}: row {int(np.flatnonzero(zero)[0])} is all zeros and cannot be L2-normalised")


def l2_normalise_rows(array: np.ndarray) -> np.ndarray:
    """Each row divided by its L2 norm (float64 arithmetic, result in float64)."""
    values = array.astype(np.float64)
    return values / np.linalg.norm(values, axis=1, keepdims=True)


def fuse_classifiers(feat1: np.ndarray, feat2: np.ndarray, final_norm: bool = True) -> np.ndarray:
    """normalise(feat1) + normalise(feat2), normalised again unless `final_norm` is False; float32 (C, D).

    Inputs must have the same 2-D shape with finite, non-zero rows (check_finite_nonzero).
    """
    fused = l2_normalise_rows(feat1) + l2_normalise_rows(feat2)
    if final_norm:
        fused = l2_normalise_rows(fused)
    return fused.astype(np.float32)
