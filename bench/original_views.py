"""The original scripts' TTA recipe as they run it: the torchvision Compose, one view at a time, seeded
per view. The reference the library's views are tested against (`mmovod.clip.view_ops.original_view`
is bit-identical to it) and what the benchmarks' baselines run.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from PIL import Image
from torchvision import transforms as T

from mmovod.clip.views import TTA_FLIP_P, TTA_JITTER, TTA_JITTER_P, TTA_RATIO, TTA_SCALE, TTA_SIZE_FACTOR, view_seed

ViewTransform = Callable[[Image.Image], torch.Tensor]


def view_transform(preprocess: ViewTransform, image_size: int, tta: bool = True) -> ViewTransform:
    """PIL crop -> `(3, image_size, image_size)` float tensor, normalised as `preprocess` does.

    `preprocess` is the model's own transform (`ClipBundle.preprocess`); with `tta` the random
    augmentations of the original recipe (`mmovod.clip.views`) run first, at 4x `image_size`.
    """
    if not tta:
        return preprocess
    return T.Compose([
        T.RandomResizedCrop(TTA_SIZE_FACTOR * image_size, scale=TTA_SCALE, ratio=TTA_RATIO,
                            interpolation=T.InterpolationMode.BICUBIC),
        T.RandomHorizontalFlip(TTA_FLIP_P),
        T.RandomApply([T.ColorJitter(**TTA_JITTER)], p=TTA_JITTER_P),
        preprocess,
    ])


def bundle_view_transform(bundle: Any, tta: bool = True) -> ViewTransform:
    """`view_transform` for a `ClipBundle` (its preprocess and input size)."""
    return view_transform(bundle.preprocess, bundle.image_size, tta)


def make_view(crop: Image.Image, transform: ViewTransform, seed: int, class_index: int,
              exemplar_index: int, view_index: int) -> torch.Tensor:
    """View `view_index` of exemplar `exemplar_index` of class `class_index`: `transform(crop)` with
    every random draw coming from `view_seed(...)`; the global RNG state is left untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(view_seed(seed, class_index, exemplar_index, view_index))
        return transform(crop)


def make_views(crop: Image.Image, transform: ViewTransform, seed: int, class_index: int,
               exemplar_index: int, num_views: int) -> torch.Tensor:
    """Views 0..num_views-1 of one exemplar, stacked: `(num_views, 3, S, S)` float32."""
    return torch.stack([make_view(crop, transform, seed, class_index, exemplar_index, v) for v in range(num_views)])
