"""The text-ensemble kind: per class, the class-name prompt row and the descriptions row, each made unit
length, averaged, so that neither the name nor the descriptions outweighs the other however many
sentences each has. float32 `(C, D)`, NOT normalised (its norm says how far the two agree)."""
from __future__ import annotations

import numpy as np

from mmovod.classifiers.fusion import l2_normalise_rows


def ensemble_rows(text: np.ndarray, descriptions: np.ndarray) -> np.ndarray:
    """float32 `(C, D)`: (l2(text) + l2(descriptions)) / 2 per row, from two `(C, D)` text classifiers."""
    return ((l2_normalise_rows(text) + l2_normalise_rows(descriptions)) / 2).astype(np.float32)
