"""Exemplar views as pixels: the TTA recipe of `mmovod.clip.views` in two orders, and the model's normalisation.

Every view is made from its drawn `ViewParams` (`mmovod.clip.views.draw_view_params`), as uint8
`(3, S, S)` pixels at the model's input size S; `Preprocessing.normalise` turns a batch of them into
the encoder's input exactly as the model's own ToTensor + Normalize would.

- `original` order (`original_view`): torchvision's PIL operations as the original script composes
  them: the crop box resized to 4S x 4S (bicubic), flip, colour jitter at 4S, then the model's own
  PIL resizing to S. Bit-identical to the original Compose (`bench/original_views.py`); about 50 ms
  of one core per view.
- `fast` order (`fast_views`): the same parameters applied straight at S, as tensor operations on a
  batch of views, on any device: the box resized to S x S (bicubic, antialiased, as PIL resizes),
  flip, then the jitter operations in the drawn order in float, rounded once to uint8. A few ms per
  view on the CPU. Jitter follows PIL's definitions (ITU-R 601 luma for grey; contrast blends with
  the rounded mean grey level; hue rotates the HSV hue), but at S instead of 4S and without PIL's
  rounding after every operation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import functional as TF
from torchvision.transforms import InterpolationMode, Normalize, ToTensor
from torchvision.transforms.v2 import functional as F

from mmovod.clip.views import TTA_SIZE_FACTOR, ViewParams
from mmovod.io.errors import InputError

LUMA = (0.299, 0.587, 0.114)
"""PIL's RGB -> L weights (ITU-R 601-2)."""
_BICUBIC = InterpolationMode.BICUBIC


@dataclass(frozen=True)
class Preprocessing:
    """A model's preprocessing split in two: `pil` (resize, centre crop: PIL -> PIL) and the
    normalisation (`mean`, `std` per channel) that follows ToTensor, for inputs of `size` x `size`."""

    pil: Callable[[Image.Image], Image.Image]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    size: int

    @classmethod
    def from_preprocess(cls, preprocess: Any, size: int) -> "Preprocessing":
        """Split a torchvision Compose of PIL steps, ToTensor and Normalize (open_clip's preprocess)."""
        steps = list(getattr(preprocess, "transforms", ()))
        to_tensor = next((i for i, t in enumerate(steps) if isinstance(t, ToTensor)), None)
        if to_tensor is None or len(steps) != to_tensor + 2 or not isinstance(steps[-1], Normalize):
            raise InputError(f"the model's preprocessing is not PIL steps, ToTensor, Normalize: {preprocess}")
        normalize = steps[-1]
        pil_steps = steps[:to_tensor]

        return cls(_Chain(pil_steps), tuple(float(m) for m in normalize.mean),
                   tuple(float(s) for s in normalize.std), size)

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 `(N, 3, S, S)` -> float32, as ToTensor then Normalize compute it (bit for bit), on pixels' device."""
        mean = torch.as_tensor(self.mean, dtype=torch.float32, device=pixels.device).view(-1, 1, 1)
        std = torch.as_tensor(self.std, dtype=torch.float32, device=pixels.device).view(-1, 1, 1)
        return pixels.float().div_(255).sub_(mean).div_(std)


class _Chain:
    """PIL steps applied in turn (a picklable Compose)."""

    def __init__(self, steps: Sequence[Callable[[Image.Image], Image.Image]]):
        self.steps = list(steps)

    def __call__(self, image: Image.Image) -> Image.Image:
        for step in self.steps:
            image = step(image)
        return image


def pil_to_pixels(image: Image.Image) -> torch.Tensor:
    """An RGB PIL image -> uint8 `(3, H, W)` tensor."""
    return torch.from_numpy(np.array(image.convert("RGB"), dtype=np.uint8)).permute(2, 0, 1).contiguous()


def plain_view(crop: Image.Image, prep: Preprocessing) -> torch.Tensor:
    """The un-augmented view: the model's own resizing of the crop, uint8 `(3, S, S)`."""
    return pil_to_pixels(prep.pil(crop))


def original_view(crop: Image.Image, params: ViewParams, prep: Preprocessing) -> torch.Tensor:
    """A TTA view in the original order (at 4S, PIL), uint8 `(3, S, S)`; bit-identical to the original Compose."""
    big = TTA_SIZE_FACTOR * prep.size
    image = TF.resized_crop(crop, params.top, params.left, params.height, params.width, [big, big], _BICUBIC,
                            antialias=True)
    if params.flip:
        image = TF.hflip(image)
    if params.jitter:
        ops = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
        factors = (params.brightness, params.contrast, params.saturation, params.hue)
        for op in params.order:
            image = ops[op](image, factors[op])
    return plain_view(image, prep)


@dataclass
class ViewRecipe:
    """The parameters of V views as tensors, for `fast_views`: `boxes` `(V, 4)` float64 (top, left,
    height, width on the pixels given; fractional on a reduced decode), `flip` and `jitter` `(V,)` bool, `order` `(V, 4)` long,
    `factors` `(V, 4)` float32 (brightness, contrast, saturation, hue)."""

    boxes: torch.Tensor
    flip: torch.Tensor
    jitter: torch.Tensor
    order: torch.Tensor
    factors: torch.Tensor

    @classmethod
    def from_params(cls, params: Sequence[ViewParams], boxes: Sequence[tuple[float, ...]] | None = None
                    ) -> "ViewRecipe":
        """Views `params`, their boxes replaced by `boxes` when the pixels are not the crop they were drawn on."""
        boxes = boxes if boxes is not None else [(p.top, p.left, p.height, p.width) for p in params]
        return cls(
            torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4),
            torch.tensor([p.flip for p in params], dtype=torch.bool),
            torch.tensor([p.jitter for p in params], dtype=torch.bool),
            torch.tensor([p.order if p.jitter else (0, 1, 2, 3) for p in params], dtype=torch.long).reshape(-1, 4),
            torch.tensor([(p.brightness, p.contrast, p.saturation, p.hue) for p in params],
                         dtype=torch.float32).reshape(-1, 4),
        )

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickled as plain lists (exact): sent from a DataLoader worker, five small tensors would each
        be shared through their own file descriptor, most of the main process's cost of receiving an
        exemplar."""
        return _recipe_from_lists, tuple(getattr(self, name).tolist() for name in _RECIPE_FIELDS)

    @classmethod
    def cat(cls, recipes: Sequence["ViewRecipe"]) -> "ViewRecipe":
        """One recipe for the views of several recipes, in order."""
        return cls(*(torch.cat([getattr(r, name) for r in recipes]) for name in _RECIPE_FIELDS))


_RECIPE_FIELDS = ("boxes", "flip", "jitter", "order", "factors")
_RECIPE_DTYPES = (torch.float64, torch.bool, torch.bool, torch.long, torch.float32)


def _recipe_from_lists(*values: list) -> ViewRecipe:
    return ViewRecipe(*(torch.tensor(v, dtype=dtype) for v, dtype in zip(values, _RECIPE_DTYPES)))


def resize_boxes(pixels: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 `(3, H, W)` and `(V, 4)` boxes (top, left, height, width; fractional allowed) -> uint8
    `(V, 3, size, size)`: each box cropped and resized with PIL's antialiased bicubic filter (the
    filter sees only the pixels that cover the box, as when the box is cropped first)."""
    views = []
    for top, left, height, width in boxes.tolist():
        if all(float(v).is_integer() for v in (top, left, height, width)):
            views.append(F.resized_crop(pixels, int(top), int(left), int(height), int(width), [size, size],
                                        interpolation=_BICUBIC, antialias=True))
        else:
            views.append(_resample_box(pixels, top, left, height, width, size))
    return torch.stack(views)


def _keys_cubic(x: torch.Tensor) -> torch.Tensor:
    """The bicubic kernel PIL uses (Keys, a = -0.5)."""
    a, x = -0.5, x.abs()
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * a
    return torch.where(x < 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


def _resample_weights(start: float, length: float, size: int, device: torch.device) -> tuple[int, torch.Tensor]:
    """Resampling [start, start + length) to `size` pixels with PIL's weights, as cropping the pixels
    that cover it and resizing does (the filter sees only those): the first pixel and `(size, n)`
    float32 weights of the n covering pixels."""
    scale = length / size
    stretch = max(scale, 1.0)
    support = 2.0 * stretch
    first, last = math.floor(start), math.ceil(start + length)
    centres = start + (torch.arange(size, dtype=torch.float64) + 0.5) * scale
    index = torch.arange(first, last, dtype=torch.float64)
    lo = torch.clamp(torch.floor(centres - support + 0.5), min=first)[:, None]
    hi = torch.clamp(torch.floor(centres + support + 0.5), max=last)[:, None]
    weights = _keys_cubic((index[None] + 0.5 - centres[:, None]) / stretch) * ((index >= lo) & (index < hi))
    return first, (weights / weights.sum(1, keepdim=True)).float().to(device)


def _resample_box(pixels: torch.Tensor, top: float, left: float, height: float, width: float,
                  size: int) -> torch.Tensor:
    """A fractional box resized to `size` x `size` (separable, PIL's weights) as uint8 `(3, size, size)`."""
    y0, rows = _resample_weights(top, height, size, pixels.device)
    x0, cols = _resample_weights(left, width, size, pixels.device)
    region = pixels[:, y0:y0 + rows.shape[1], x0:x0 + cols.shape[1]].float()
    return (rows @ region @ cols.T).round_().clamp_(0, 255).to(torch.uint8)


def flip_and_jitter(views: torch.Tensor, recipe: ViewRecipe) -> torch.Tensor:
    """uint8 `(N, 3, S, S)` views -> uint8: mirrored where `recipe.flip`, then colour-jittered in each
    view's drawn order where `recipe.jitter` (integer levels kept as PIL keeps them). On views' device."""
    flip = recipe.flip.to(views.device)
    views = torch.where(flip.view(-1, 1, 1, 1), F.horizontal_flip(views), views)
    if not bool(recipe.jitter.any()):
        return views
    x = views.float()
    factors = recipe.factors.to(x.device)
    jitter = recipe.jitter.tolist()
    order = recipe.order.tolist()
    for step in range(4):
        for op, apply in enumerate(_JITTER_OPS):
            idx = [i for i in range(len(jitter)) if jitter[i] and order[i][step] == op]
            if idx:
                index = torch.tensor(idx, device=x.device)
                x[index] = apply(x[index], factors[index, op].view(-1, 1, 1, 1))
    return x.to(torch.uint8)


def fast_views(pixels: torch.Tensor, recipe: ViewRecipe, size: int) -> torch.Tensor:
    """TTA views in the fast order: uint8 `(3, H, W)` crop -> uint8 `(V, 3, size, size)`, on pixels' device."""
    return flip_and_jitter(resize_boxes(pixels, recipe.boxes, size), recipe)


def _grey(x: torch.Tensor) -> torch.Tensor:
    """PIL's L of 0-255 RGB: the luma, rounded to an integer level."""
    weights = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return torch.floor((x * weights).sum(1, keepdim=True) + 0.5)


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """PIL's blend towards `other` by `factor` (values kept integer: clipped, then truncated)."""
    return (factor * x + (1 - factor) * other).clamp_(0, 255).floor_()


def _brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return _blend(x, torch.zeros((), device=x.device), factor)


def _contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return _blend(x, torch.floor(_grey(x).mean(dim=(1, 2, 3), keepdim=True) + 0.5), factor)


def _saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return _blend(x, _grey(x), factor)


def _hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """PIL's hue rotation of 0-255 RGB by `shift` turns: hue and saturation as 8-bit levels (truncated),
    the hue moved by trunc(shift * 255) levels modulo 256, value kept; back to RGB rounded."""
    r, g, b = x.unbind(1)
    value = x.amax(1)
    chroma = value - x.amin(1)
    safe = torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    sector = torch.where(value == r, (g - b) / safe, torch.where(value == g, 2 + (b - r) / safe, 4 + (r - g) / safe))
    level = torch.floor(torch.remainder(sector / 6 + 1, 1.0) * 255)
    sat = torch.floor(chroma / torch.where(value > 0, value, torch.ones_like(value)) * 255)
    steps = torch.trunc(shift.view(-1, 1, 1) * 255)
    hue6 = torch.remainder(level + steps, 256) * 6 / 255
    # channel n = value * (1 - s * clamp(min(k, 4 - k), 0, 1)), k = (n + hue6) mod 6 (n = 5, 3, 1 for R, G, B)
    out = [value - torch.round(value * (sat / 255) * torch.clamp(torch.minimum(k, 4 - k), 0, 1))
           for k in (torch.remainder(n + hue6, 6) for n in (5.0, 3.0, 1.0))]
    grey = (chroma == 0).unsqueeze(1)
    return torch.where(grey, x, torch.stack(out, 1))


_JITTER_OPS = (_brightness, _contrast, _saturation, _hue)
