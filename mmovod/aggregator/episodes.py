"""Training episodes: which classes can take part, two disjoint exemplar sets per class drawn as a
pure function of (seed, step), and their features read from the cache."""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from mmovod.aggregator.train_config import TrainConfig
from mmovod.features.feature_cache import FeatureCache
from mmovod.io.errors import InputError
from mmovod.io.wording import plural

log = logging.getLogger(__name__)


@dataclass
class Episode:
    """Two disjoint exemplar sets per class as tokens: columns [:split] of `rows` are set A, the rest set B."""

    step: int
    k_a: int
    k_b: int
    split: int
    rows: np.ndarray  # (B, tokens) global cache row of each token (an image repeats once per view with "all")
    views: np.ndarray  # (B, tokens) view index of each token


def eligible_classes(cache: FeatureCache, min_images: int, strict: bool) -> np.ndarray:
    """Indices of the classes with at least `min_images` rows; the others are skipped with a report
    (or raise InputError with `strict`)."""
    sizes = cache.class_sizes
    small = np.flatnonzero(sizes < min_images)
    if len(small):
        names = ", ".join(f"{cache.classes[i]} ({sizes[i]})" for i in small[:5])
        more = f" and {len(small) - 5} more" if len(small) > 5 else ""
        message = f"{len(small)} of {plural(len(sizes), 'class has', 'classes have')} fewer than {min_images} images (2 x --k-max): {names}{more}"
        if strict:
            raise InputError(f"{cache.root}: {message} (--strict)")
        log.warning("skipping %s", message)
    return np.flatnonzero(sizes >= min_images)


class EpisodeSampler:
    """Draws episodes from the rows of eligible classes; `sample(step)` depends only on (seed, step)."""

    def __init__(self, cache: FeatureCache, classes: np.ndarray, config: TrainConfig):
        if len(classes) < config.batch_classes:
            raise InputError(
                f"{cache.root}: only {plural(len(classes), 'class has', 'classes have')} at least {2 * config.k_max} images, "
                f"fewer than --batch-classes {config.batch_classes}"
            )
        self.starts = cache.class_offsets[classes]
        self.sizes = cache.class_sizes[classes]
        self.classes = classes
        self.views = cache.views
        self.config = config

    def sample(self, step: int) -> Episode:
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, step])
        k_a = int(rng.integers(cfg.k_min, cfg.k_max + 1))
        k_b = k_a if cfg.k_pairing == "same" else int(rng.integers(cfg.k_min, cfg.k_max + 1))
        chosen = rng.choice(len(self.classes), size=cfg.batch_classes, replace=False)
        picks = np.stack([rng.choice(int(self.sizes[c]), size=k_a + k_b, replace=False) for c in chosen])
        rows = self.starts[chosen][:, None] + picks
        if cfg.view_sampling == "one":
            return Episode(step, k_a, k_b, k_a, rows, rng.integers(0, self.views, size=rows.shape))
        views = np.broadcast_to(np.arange(self.views), (*rows.shape, self.views)).reshape(len(rows), -1)
        return Episode(step, k_a, k_b, k_a * self.views, np.repeat(rows, self.views, axis=1), views)


def load_episode(cache: FeatureCache, episode: Episode, part: slice) -> np.ndarray:
    """float16 `(b, tokens, dim)` features of the classes `part` of `episode` (this rank's share)."""
    rows, views = episode.rows[part], episode.views[part]
    features = cache.gather(rows.reshape(-1), views.reshape(-1))
    cache.check_finite(rows, features)
    return features.reshape(*rows.shape, cache.dim)
