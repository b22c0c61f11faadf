"""A linear map from crop embeddings to a classifier's rows, fitted on other classes only.

A detector trained with a classifier learns a linear layer that takes its region embeddings to the
rows' space. To score rows that are not in CLIP's space as such a detector would see them, the crop
embeddings go through a ridge-regression map (with a bias) fitted to predict the row of each crop's
class; the classes are split into `FOLDS` groups and each group's crops go through a map fitted on
the crops of the other groups, so no crop is scored by a map that has seen its class.
"""
from __future__ import annotations

import numpy as np

FOLDS = 5
RIDGE = 0.1
"""Ridge penalty relative to the mean eigenvalue of the fitted crops' Gram matrix."""


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), np.finfo(np.float64).tiny)


def fit_map(crops: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """`(D + 1, E)` float64 ridge map (last row: the bias) from `(n, D)` crops to `(n, E)` targets."""
    x = np.hstack([crops, np.ones((len(crops), 1))])
    gram = x.T @ x
    penalty = RIDGE * np.trace(gram) / len(gram) * np.eye(len(gram))
    penalty[-1, -1] = 0.0  # the bias is not shrunk
    return np.linalg.solve(gram + penalty, x.T @ targets)


def cross_fitted(crops: np.ndarray, labels: np.ndarray, rows: np.ndarray, seed: int = 0) -> np.ndarray | None:
    """`(n, E)` float64 unit vectors: each of the `(n, D)` unit `crops` through a map fitted on the crops of
    other classes to the unit `(C, E)` `rows` of their class (`labels`: row index per crop).
    None when fewer than two classes have crops (no other class to fit on)."""
    classes = np.unique(labels)
    if len(classes) < 2:
        return None
    fold_of_class = np.zeros(len(rows), dtype=np.int64)
    fold_of_class[classes] = np.random.default_rng(seed).permutation(len(classes)) % min(FOLDS, len(classes))
    fold = fold_of_class[labels]
    targets = _unit(np.asarray(rows, dtype=np.float64))[labels]
    crops = np.asarray(crops, dtype=np.float64)
    out = np.zeros((len(crops), rows.shape[1]))
    for f in np.unique(fold):
        held = fold == f
        weights = fit_map(crops[~held], targets[~held])
        out[held] = np.hstack([crops[held], np.ones((int(held.sum()), 1))]) @ weights
    return _unit(out)
