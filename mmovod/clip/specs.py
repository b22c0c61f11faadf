"""Typed settings shared by every CLIP step: which CLIP to run (`ClipSpec`) and how exemplar views are made (`ViewSpec`).

Tools build these from their flags (`mmovod.cli.flags`); notebooks build them directly:
`ClipSpec("ViT-B/32", device="cuda")`, `ViewSpec(num_views=5, context=0.4)`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mmovod.io.errors import InputError

if TYPE_CHECKING:  # the factory imports torch and open_clip; tools that only parse flags must not pay for them
    from mmovod.clip.factory import ClipBundle

VIEW_ORDERS = ("fast", "original")
"""How TTA views can be made (`mmovod.clip.view_ops`); defined here, without torch, for the flag parsers."""


@dataclass(frozen=True)
class ClipSpec:
    """A CLIP model to load and how to run it.

    `model`: an OpenAI name (`ViT-B/32`), an open_clip name or an open_clip model-config `.json`;
    `pretrained`: an open_clip tag, a local checkpoint file, `none`, or None for the model's default;
    `device`: a torch device string, None for CUDA when available else CPU (fp16 autocast on CUDA,
    fp32 on CPU); `batch_size`: items per forward pass, None for the step's own default.
    """

    model: str = "ViT-B/32"
    pretrained: str | None = None
    device: str | None = None
    batch_size: int | None = None

    def __post_init__(self) -> None:
        if self.batch_size is not None and self.batch_size < 1:
            raise InputError(f"batch size must be at least 1, found {self.batch_size}")

    def load(self, tower: str = "both") -> ClipBundle:
        """The loaded model (`tower` "text" or "image" frees the other tower)."""
        from mmovod.clip.factory import load_clip

        return load_clip(self.model, self.pretrained, self.device, tower=tower)


@dataclass(frozen=True)
class ViewSpec:
    """How each exemplar crop becomes `num_views` encoder inputs.

    `context`: the box is grown by this fraction around its centre before it is made square (see
    `mmovod.clip.crops`); `tta`: random augmented views (`mmovod.clip.views`), else the model's plain
    preprocessing (then one view is enough); `seed`: view v of item e of class c depends only on
    (seed, c, e, v); `workers`: DataLoader processes that decode and crop (0: the main process);
    `skip_bad`: skip unreadable images (recorded) instead of stopping at the first one; `order`: how
    TTA views are made (`mmovod.clip.view_ops`): "fast" (at the model's input size, as batched tensor
    operations; a JPEG decoded at a reduced scale where the views allow) or "original" (at 4x the input
    size with PIL, as the original script; bit-identical to it).
    """

    num_views: int = 5
    tta: bool = True
    context: float = 0.4
    seed: int = 0
    workers: int = 2
    skip_bad: bool = False
    order: str = "fast"

    def __post_init__(self) -> None:
        if self.num_views < 1:
            raise InputError(f"number of views must be at least 1, found {self.num_views}")
        if self.workers < 0:
            raise InputError(f"number of workers must not be negative, found {self.workers}")
        if self.seed < 0:
            raise InputError(f"seed must not be negative, found {self.seed}")
        if not 0 <= self.context < float("inf"):
            raise InputError(f"context must be a finite number >= 0, found {self.context}")
        if self.order not in VIEW_ORDERS:
            raise InputError(f"view order must be one of {', '.join(VIEW_ORDERS)}, found {self.order!r}")

    def provenance(self) -> dict[str, Any]:
        """What outputs made from these views record of them, one spelling everywhere (classifier
        sidecars, the build's fingerprints, the crop-cache key); `workers` changes nothing and is left out."""
        return {"context": self.context, "num_views": self.num_views, "tta": self.tta, "seed": self.seed,
                "view_order": self.order if self.tta else None, "skip_bad": self.skip_bad}


def as_bundle(clip: ClipSpec | ClipBundle, tower: str = "both") -> tuple[ClipBundle, int | None]:
    """A loaded model and the batch size to use: `clip` itself (batch size None: the step's default),
    or the model a ClipSpec names, loaded now, with the spec's batch size."""
    if not isinstance(clip, ClipSpec):  # a loaded ClipBundle
        return clip, None
    return clip.load(tower), clip.batch_size
