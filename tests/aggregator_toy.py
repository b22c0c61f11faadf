"""Generated feature caches for the aggregator tests: classes are Gaussian clusters in feature space."""
from pathlib import Path

import numpy as np

from mmovod.features.feature_cache import write_array_cache

TOY_CLIP = {"clip_model": "toy-clip", "pretrained": None, "embed_dim": 32}


def gaussian_classes(seed, n_classes, per_class, dim=32, views=1, spread=2.0, prefix="c", sizes=None):
    """`(name, (n, views, dim))` per class: a random centre plus isotropic noise of std `spread`."""
    rng = np.random.default_rng(seed)
    out = []
    for c in range(n_classes):
        n = per_class if sizes is None else sizes[c]
        centre = rng.normal(size=dim)
        out.append((f"{prefix}{c:03d}", centre + spread * rng.normal(size=(n, views, dim))))
    return out


def toy_cache(path: Path, seed=0, n_classes=48, per_class=24, shard_size=100, **kw) -> Path:
    return write_array_cache(path, gaussian_classes(seed, n_classes, per_class, **kw), TOY_CLIP, shard_size)
