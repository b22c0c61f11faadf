"""Classification metrics over crops, from a score matrix: pure numpy, vectorised for LVIS scale.

`scores` is `(N, C)` float32: row i holds every class's score for crop i (cosine similarity), and
`labels` is `(N,)` the true class index of every crop. Conventions:
- Ties in a crop's ranking of classes go to the lower class index (as `argmax` does): the true
  class's rank is #{classes scoring strictly higher} + #{lower-index classes scoring the same}.
  top-k: that rank is below k.
- Per-class average precision ranks all N crops by that class's score. It is the exact
  (non-interpolated) AP, tie-aware like scikit-learn's `average_precision_score`: the mean over
  the class's crops of precision at its score, where precision at score s counts every crop
  scoring >= s. Crops with equal scores therefore share one precision and the order among ties
  does not matter. Classes without crops have no AP (NaN) and are left out of means.
- Mean per-class accuracy averages top-1 accuracy over classes that have crops.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RANK_CHUNK = 8192
SORT_CHUNK = 64


def true_class_rank(scores: np.ndarray, labels: np.ndarray, chunk: int = RANK_CHUNK) -> np.ndarray:
    """(N,) int64: the 0-based rank of each crop's true class (ties to the lower class index).

    Works `chunk` crops at a time, so the temporaries are `chunk x C` booleans.
    """
    n, num_classes = scores.shape
    ranks = np.empty(n, dtype=np.int64)
    class_index = np.arange(num_classes)[None, :]
    for start in range(0, n, chunk):
        block = scores[start:start + chunk]
        lab = labels[start:start + chunk]
        true = block[np.arange(len(lab)), lab][:, None]
        higher = (block > true).sum(axis=1)
        tied_before = ((block == true) & (class_index < lab[:, None])).sum(axis=1)
        ranks[start:start + chunk] = higher + tied_before
    return ranks


def average_precision(scores: np.ndarray, labels: np.ndarray, chunk: int = SORT_CHUNK) -> np.ndarray:
    """(C,) float64 exact AP of ranking all crops by each class's score (NaN for a class without crops).

    Each class column is copied and sorted once (`chunk` columns at a time, so the extra memory is
    `chunk x N` floats); the number of crops scoring >= each positive's score comes from a binary search.
    """
    n, num_classes = scores.shape
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(num_classes + 1))
    ap = np.full(num_classes, np.nan)
    for start in range(0, num_classes, chunk):
        block = np.ascontiguousarray(scores[:, start:start + chunk].T)
        members = [order[bounds[c]:bounds[c + 1]] for c in range(start, start + len(block))]
        positive_scores = [row[m] for row, m in zip(block, members)]
        block.sort(axis=1)
        for offset, (row, pos) in enumerate(zip(block, positive_scores)):
            if len(pos):
                at_least = n - np.searchsorted(row, pos, side="left")
                pos_at_least = len(pos) - np.searchsorted(np.sort(pos), pos, side="left")
                ap[start + offset] = float(np.mean(pos_at_least / at_least))
    return ap


@dataclass
class CropMetrics:
    """Per-crop and per-class results of one classifier on one crop set (see the module docstring)."""

    labels: np.ndarray  # (N,) true class index
    predicted: np.ndarray  # (N,) top-1 class index
    rank: np.ndarray  # (N,) rank of the true class
    ap: np.ndarray  # (C,) AP, NaN for classes without crops
    crops_per_class: np.ndarray  # (C,)
    accuracy_per_class: np.ndarray  # (C,) top-1 accuracy, NaN for classes without crops

    @property
    def num_classes(self) -> int:
        return len(self.ap)

    def summary(self, classes: np.ndarray | None = None) -> dict[str, float | int | None]:
        """top-1, top-5, mean per-class accuracy and mAP over `classes` (bool `(C,)`; all when None).

        Crop metrics use the crops whose true class is selected; class means use the selected
        classes that have crops. None where the selection has no crop.
        """
        selected = np.ones(self.num_classes, dtype=bool) if classes is None else np.asarray(classes, dtype=bool)
        crops = selected[self.labels]
        with_crops = selected & (self.crops_per_class > 0)
        if not crops.any():
            return {"crops": 0, "classes": 0, "top1": None, "top5": None, "mean_class_accuracy": None, "map": None}
        return {
            "crops": int(crops.sum()),
            "classes": int(with_crops.sum()),
            "top1": float(np.mean(self.rank[crops] == 0)),
            "top5": float(np.mean(self.rank[crops] < 5)),
            "mean_class_accuracy": float(np.mean(self.accuracy_per_class[with_crops])),
            "map": float(np.mean(self.ap[with_crops])),
        }

    def confused_pairs(self, top: int = 20) -> list[tuple[int, int, int]]:
        """The `top` most frequent (true class, predicted class, count) with true != predicted,
        by count descending, then true and predicted index ascending."""
        c = self.num_classes
        wrong = self.predicted != self.labels
        pairs = self.labels[wrong].astype(np.int64) * c + self.predicted[wrong]
        codes, counts = np.unique(pairs, return_counts=True)
        order = np.lexsort((codes, -counts))[:top]
        return [(int(codes[i] // c), int(codes[i] % c), int(counts[i])) for i in order]


def crop_metrics(scores: np.ndarray, labels: np.ndarray) -> CropMetrics:
    """Every metric of `scores` `(N, C)` against `labels` `(N,)` (class indices into the columns)."""
    n, num_classes = scores.shape
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (n,) or (n and (labels.min() < 0 or labels.max() >= num_classes)):
        raise ValueError(f"labels must be {n} class indices below {num_classes}")
    predicted = scores.argmax(axis=1) if n else np.zeros(0, dtype=np.int64)
    rank = true_class_rank(scores, labels)
    counts = np.bincount(labels, minlength=num_classes)
    correct = np.bincount(labels, weights=(rank == 0), minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(counts > 0, correct / np.maximum(counts, 1), np.nan)
    return CropMetrics(labels, predicted.astype(np.int64), rank, average_precision(scores, labels), counts, accuracy)
