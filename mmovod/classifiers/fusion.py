"""Multi-modal classifier fusion: L2-normalise two classifiers row-wise, add, optionally re-normalise."""
from __future__ import annotations

import os

import numpy as np

from mmovod.io.arrays import check_classifier_path, load_matrix, read_sidecar, save_classifier
from mmovod.io.errors import InputError


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


def fuse_classifier_files(feat1_path: str, feat2_path: str, out_path: str, final_norm: bool = True) -> tuple[int, int]:
    """Fuse two classifier `.npy` files into `out_path` (float32 `(C, D)` and a sidecar naming both sources).

    Returns the fused shape; InputError for mismatched shapes or rows that cannot be normalised.
    """
    check_classifier_path(out_path)
    feat1, feat2 = load_matrix(feat1_path), load_matrix(feat2_path)
    if feat1.shape != feat2.shape:
        raise InputError(f"{feat2_path}: shape {feat2.shape} does not match {feat1_path} {feat1.shape}")
    check_finite_nonzero(feat1, feat1_path)
    check_finite_nonzero(feat2, feat2_path)
    fused = fuse_classifiers(feat1, feat2, final_norm)
    save_classifier(out_path, fused, {
        "kind": "multi-modal fusion",
        "normalisation": "l2(l2(feat1) + l2(feat2))" if final_norm else "l2(feat1) + l2(feat2)",
        "sources": {
            "feat1": {"path": str(feat1_path), "sidecar": read_sidecar(feat1_path)},
            "feat2": {"path": str(feat2_path), "sidecar": read_sidecar(feat2_path)},
        },
    })
    return fused.shape
