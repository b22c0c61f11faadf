"""The random parameters of deterministic test-time augmentation (TTA) views of exemplar crops.

The original recipe, a torchvision Compose: RandomResizedCrop to a square of 4x the model's input
size (area 0.8-1.0, aspect 3/4-4/3, bicubic), horizontal flip with p=0.5, ColorJitter(brightness 0.2,
contrast 0.2, saturation 0.2, hue 0.05) with p=0.8, then the model's own preprocessing. Without TTA a
view is the model's preprocessing only. (The Compose itself, view by view, is the tests' and
benchmarks' reference: `bench/original_views.py`.)

`draw_view_params` draws the Compose's random numbers, in its order, once, into a `ViewParams`
record, so a view can be made from its parameters in either order of `mmovod.clip.view_ops` (the
original 4x-size one, bit-identical to the Compose, or the fast one at the model's input size).

Determinism: the draws come from torch's CPU generator seeded by `view_seed(...)`, a seed derived
from (seed, class index, exemplar index, view index), inside `torch.random.fork_rng(devices=[])` (the
caller's RNG state is restored afterwards), so a view depends on nothing else: not on batch size,
DataLoader workers or the order in which views are made.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torchvision import transforms as T

TTA_SCALE = (0.8, 1.0)
TTA_RATIO = (3.0 / 4.0, 4.0 / 3.0)
TTA_SIZE_FACTOR = 4
TTA_FLIP_P = 0.5
TTA_JITTER = {"brightness": 0.2, "contrast": 0.2, "saturation": 0.2, "hue": 0.05}
TTA_JITTER_P = 0.8
JITTER_OPS = ("brightness", "contrast", "saturation", "hue")
"""ColorJitter's operations, indexed as in its `fn_idx` (`ViewParams.order`)."""
_JITTER = T.ColorJitter(**TTA_JITTER)


def view_seed(seed: int, class_index: int, exemplar_index: int, view_index: int) -> int:
    """A 64-bit seed for one view, mixed from the four non-negative ints by numpy's SeedSequence."""
    state = np.random.SeedSequence([seed, class_index, exemplar_index, view_index]).generate_state(1, np.uint64)
    return int(state[0])


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
    """The parameters the original Compose draws for view `view_index` of a `width` x `height` crop.

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
