"""One exemplar's encoder inputs from its record: decode, crop, draw its views' parameters, make the views.

`exemplar_input` is what a DataLoader worker runs for each exemplar; `ViewPlan` says how views are
made. View v of exemplar e of class c depends only on (seed, c, e, v) and the image, never on workers,
batches or order.

Decode only what is needed (fast order only; the original order always decodes at full size): a
JPEG is decoded at 1/r of its size by the decoder's DCT scaling, r the largest of 8, 4, 2 for which
every region a view is resized from is still at least S x S at that scale: the smallest side of the
views' boxes >= r * S. The boxes, drawn on the full-size crop, are mapped onto the decoded pixels as
they are, fractional, and resampled with PIL's filter, so nothing shifts. Plain (un-augmented) views
always decode at full size: they are the model's own preprocessing, exactly.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from mmovod.clip.crops import decode_image, load_exemplar_crop
from mmovod.readers.exemplar_records import exemplar_crop_box
from mmovod.clip.specs import VIEW_ORDERS
from mmovod.clip.view_ops import (Preprocessing, ViewRecipe, fast_views, original_view, pil_to_pixels,
                                  plain_view)
from mmovod.clip.views import ViewParams, draw_view_params
from mmovod.readers.image_roots import record_image_path

DRAFT_REDUCTIONS = (8, 4, 2)


@dataclass(frozen=True)
class ViewPlan:
    """How each exemplar becomes `num_views` uint8 views for `prep`'s model.

    `tta`: augmented views (else the model's plain preprocessing, repeated); `order`: "fast" (at the
    input size, tensor ops) or "original" (at 4x, PIL, bit-identical to the original script); `seed`:
    the views' seed; `defer`: hand fast TTA views over as crop + recipe, for `fast_views` on the
    encoding device in the main process.
    """

    prep: Preprocessing
    num_views: int
    tta: bool = True
    order: str = "fast"
    seed: int = 0
    defer: bool = False

    def __post_init__(self) -> None:
        if self.order not in VIEW_ORDERS:
            raise ValueError(f"view order must be one of {VIEW_ORDERS}, found {self.order!r}")


@dataclass
class ExemplarInput:
    """One exemplar's views: uint8 `views` `(V, 3, S, S)`, or (deferred) the uint8 `crop` `(3, h, w)`
    and the `recipe` of its views on it."""

    views: torch.Tensor | None = None
    crop: torch.Tensor | None = None
    recipe: ViewRecipe | None = None

    def pin_memory(self) -> "ExemplarInput":
        """A copy in page-locked memory (called by DataLoader's pin_memory for CUDA)."""
        return ExemplarInput(*(t.pin_memory() if t is not None else None for t in (self.views, self.crop)), self.recipe)


def draft_reduction(min_side: int, size: int) -> int:
    """The largest r in 8, 4, 2 with `min_side` >= r * `size`, else 1."""
    return next((r for r in DRAFT_REDUCTIONS if min_side >= r * size), 1)


def _draw(plan: ViewPlan, width: int, height: int, class_index: int, exemplar_index: int) -> list[ViewParams]:
    return [draw_view_params(width, height, plan.seed, class_index, exemplar_index, v) for v in range(plan.num_views)]


def exemplar_input(record: Mapping[str, Any], roots: Mapping[str, Path], context: float, plan: ViewPlan,
                   class_index: int, exemplar_index: int) -> ExemplarInput:
    """The views of one exemplar record (crop geometry: `mmovod.clip.crops`). Raises BadImageError."""
    size = plan.prep.size
    if plan.order == "original" and plan.tta:
        crop = load_exemplar_crop(record, roots, context)
        params = _draw(plan, crop.width, crop.height, class_index, exemplar_index)
        return ExemplarInput(views=torch.stack([original_view(crop, p, plan.prep) for p in params]))
    if not plan.tta:  # the model's own preprocessing, from the full-size decode in both orders
        crop = load_exemplar_crop(record, roots, context)
        return ExemplarInput(views=plain_view(crop, plan.prep).expand(plan.num_views, -1, -1, -1))
    layout: dict[str, Any] = {}

    def lay_out(width: int, height: int) -> int:
        layout["box"] = left, upper, right, lower = exemplar_crop_box(record, width, height, context)
        layout["params"] = _draw(plan, right - left, lower - upper, class_index, exemplar_index)
        return draft_reduction(min(min(p.height, p.width) for p in layout["params"]), size)

    decoded = decode_image(record_image_path(record, roots), lay_out)
    if "box" not in layout:  # not a JPEG: laid out on the full-size image
        lay_out(*decoded.full_size)
    left, upper, right, lower = layout["box"]
    r, image = decoded.reduction, decoded.image
    ox, oy = decoded.origin
    # the decoded pixels that cover the crop (the crop itself when r == 1); the boxes, mapped onto
    # them, stay fractional, so a reduced decode shifts nothing
    x0, y0 = (left - ox) // r, (upper - oy) // r
    crop = image.crop((x0, y0, min(-(-(right - ox) // r), image.width), min(-(-(lower - oy) // r), image.height)))
    boxes = [((upper + p.top - oy) / r - y0, (left + p.left - ox) / r - x0, p.height / r, p.width / r)
             for p in layout["params"]]
    recipe = ViewRecipe.from_params(layout["params"], boxes)
    pixels = pil_to_pixels(crop)
    if plan.defer:
        return ExemplarInput(crop=pixels, recipe=recipe)
    return ExemplarInput(views=fast_views(pixels, recipe, size))
