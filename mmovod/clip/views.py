"""Deterministic test-time augmentation (TTA) of exemplar crops, with torchvision's transforms.

A TTA view of a crop: RandomResizedCrop to a square of 4x the model's input size (area 0.8-1.0,
aspect 3/4-4/3, bicubic), horizontal flip with p=0.5, ColorJitter(brightness 0.2, contrast 0.2,
saturation 0.2, hue 0.05) with p=0.8, then the model's own preprocessing. Without TTA a view is the
model's preprocessing only.

Determinism: torchvision's transforms draw from torch's global CPU generator, so each view is made
inside `torch.random.fork_rng(devices=[])` after `torch.manual_seed(view_seed(...))`, a seed derived
from (seed, class index, exemplar index, view index). The fork is local (the caller's RNG state is
restored afterwards), and a view depends on nothing else: not on batch size, DataLoader workers or
the order in which views are made.

`draw_view_params` draws the same random numbers in the same order as the Compose above, once, into a
`ViewParams` record, so a view can be made from its parameters in either order of
`mmovod.clip.view_ops` (the original 4x-size one, bit-identical to `view_transform`, or the fast one
at the model's input size).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T

ViewTransform = Callable[[Image.Image], torch.Tensor]

TTA_SCALE = (0.8, 1.0)
TTA_RATIO = (3.0 / 4.0, 4.0 / 3.0)
TTA_SIZE_FACTOR = 4
TTA_FLIP_P = 0.5
TTA_JITTER = {"brightness": 0.2, "contrast": 0.2, "saturation": 0.2, "hue": 0.05}
TTA_JITTER_P = 0.8
JITTER_OPS = ("brightness", "contrast", "saturation", "hue")
"""ColorJitter's operations, indexed as in its `fn_idx` (`ViewParams.order`)."""
_JITTER = T.ColorJitter(**TTA_JITTER)


def view_transform(preprocess: ViewTransform, image_size: int, tta: bool = True) -> ViewTransform:
    """PIL crop -> `(3, image_size, image_size)` float tensor, normalised as `preprocess` does.

    `preprocess` is the model's own transform (`ClipBundle.preprocess`); with `tta` the random
    augmentations above run first, at 4x `image_size`.
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


def view_seed(seed: int, class_index: int, exemplar_index: int, view_index: int) -> int:
    """A 64-bit seed for one view, mixed from the four non-negative ints by numpy's SeedSequence."""
    state = np.random.SeedSequence([seed, class_index, exemplar_index, view_index]).generate_state(1, np.uint64)
    return int(state[0])


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


@dataclass(frozen=True)
class ViewParams:
    """The random draws of one TTA view of a `width` x `height` crop.

    `top, left, height, width`: the RandomResizedCrop box on the crop (pixels); `flip`: mirror it;
    `jitter`: colour jitter applied (p=0.8), then `order` (indices into `JITTER_OPS`) says in which
    order `brightness`, `contrast`, `saturation` (factors) and `hue` (a shift in turns) are applied.
    Without jitter the factors are the identity (1, 1, 1, 0) and `order` is empty.
    """

    top: int
    left: int
    height: int
    width: int
    flip: bool
    jitter: bool
    order: tuple[int, ...] = ()
    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0
    hue: float = 0.0


def draw_view_params(width: int, height: int, seed: int, class_index: int, exemplar_index: int,
                     view_index: int) -> ViewParams:
    """The parameters `make_view(crop, view_transform(...), seed, ...)` draws for a `width` x `height` crop.

    The draws come from torch's global CPU generator seeded by `view_seed(...)` inside a fork (the caller's
    RNG state is untouched), in the Compose's order: crop box, flip, jitter-or-not, then (only when
    jittering) ColorJitter's permutation and its four factors.
    """
    shape_only = torch.zeros(1).expand(3, height, width)  # get_params reads the size only
    with torch.random.fork_rng(devices=[]):
        # the CPU generator is the only one get_params draws from; torch.manual_seed would also queue a
        # seed for every accelerator (recording a stack trace each time), several times the cost of the draws
        torch.default_generator.manual_seed(view_seed(seed, class_index, exemplar_index, view_index))
        top, left, h, w = T.RandomResizedCrop.get_params(shape_only, list(TTA_SCALE), list(TTA_RATIO))
        flip = bool(torch.rand(1) < TTA_FLIP_P)
        if TTA_JITTER_P < torch.rand(1):
            return ViewParams(top, left, h, w, flip, False)
        order, b, c, s, hue = T.ColorJitter.get_params(_JITTER.brightness, _JITTER.contrast, _JITTER.saturation,
                                                        _JITTER.hue)
    return ViewParams(top, left, h, w, flip, True, tuple(int(i) for i in order), b, c, s, hue)
