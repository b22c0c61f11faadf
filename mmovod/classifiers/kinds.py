"""The classifier kinds: one table, read by the sidecar, the vocabulary build, the export, the check and the tools.

A row says what a kind is: the `space` its rows live in (`clip`: CLIP's joint embedding space;
`aggregator`: a visual aggregator's own output space; `mixed`: a fusion of rows from both; a kind that
uses the aggregator has the space its checkpoint was trained for, `space_with`), its
`dtype`, what it `needs` (inputs, or other kinds), how each row is computed (`computed`, recorded in
its sidecar, and `rows`, the function that computes them), the provenance keys of its sidecar
`details`, and whether a prompt-embedding detector can use it (`exportable`: CLIP-space rows only).

Rows of `build_classifiers` (`built`) are computed by `rows` (a "module:function" path, imported
only when the kind is built, so reading a sidecar does not import torch) with one signature per
family: text kinds `rows(sentences_per_class, clip, progress=...)`; vision kinds `rows(encoded)`
(the exemplars' view embeddings), plus `aggregator, num_views, device` when they need the
aggregator; fusions `rows(text_rows, vision_rows)`. Adding a kind is one module holding its `rows`
function and one row here. Everything derived from the table (`built()`, `sidecar_kinds()`, ...) is
computed when asked, from `KINDS` as it is then.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from mmovod.clip.crops import AGGREGATOR_CONTEXT

SPACES = ("clip", "aggregator", "mixed")
SPACE_NOTES = {
    "clip": "rows in CLIP's space: a detector trained on text rows can use them as they are",
    "aggregator": "rows NOT in CLIP's space, from an aggregator trained for its own space: only a detector "
                  "trained with these rows can use them",
    "mixed": "rows NOT in CLIP's space, text fused with an aggregator's own space: only a detector "
             "trained with these rows can use them",
}
"""What each space means to the detector that gets the rows: the line the build, the check and the evaluation show."""
TEXT_INPUTS = ("prompts", "descriptions")
"""Needs that make a text kind: the sentences embedded per class."""
VIEW_DETAILS = ("context", "num_views", "tta", "seed", "view_order", "skip_bad")
"""Provenance of a vision kind's views (`ViewSpec.provenance()`)."""
VISION_DETAILS = (*VIEW_DETAILS, "exemplars_per_class", "classes_without_exemplars", "skipped_images", "combine")


@dataclass(frozen=True)
class ClassifierKind:
    """One row of the table (see the module docstring)."""

    name: str
    space: str
    dtype: str
    needs: tuple[str, ...]
    computed: str
    details: tuple[str, ...]
    rows: str | None = None
    normalized: bool = False
    built: bool = True
    handoff: int | None = None
    """Preference as the build's hand-off to a detector (lowest first); None: never handed off."""
    context: float | None = None
    """A vision kind's crop context when it is not the build's own (`--context`)."""
    sidecar_kind: str | None = None
    """The sidecar's `kind` when it is not `name` (the build's fusions are `multi-modal` files)."""

    @property
    def follows_aggregator(self) -> bool:
        """Whether the rows come (directly or through the fused vision kind) from the visual aggregator."""
        return "aggregator" in self.needs or (self.fuses is not None and KINDS[self.fuses].follows_aggregator)

    def space_with(self, aggregator_space: str | None) -> str:
        """The space of the rows when made with an aggregator whose outputs live in `aggregator_space`
        (`mmovod.aggregator.model.output_space`; None: unknown, the table's `space`)."""
        if aggregator_space is None or not self.follows_aggregator:
            return self.space
        if self.family == "vision":
            return aggregator_space
        return "clip" if aggregator_space == "clip" else "mixed"

    @property
    def spaces(self) -> tuple[str, ...]:
        """Every space this kind's rows can be in."""
        return tuple(dict.fromkeys((self.space, *(self.space_with(s) for s in ("clip", "aggregator")))))

    @property
    def family(self) -> str:
        """"text", "vision" or "fusion": which inputs the build prepares for `rows`."""
        if set(self.needs) & set(TEXT_INPUTS):
            return "text"
        return "vision" if "exemplars" in self.needs else "fusion"

    @property
    def fuses(self) -> str | None:
        """The vision kind a fusion adds to the text rows."""
        return next((n for n in self.needs if n in KINDS), None) if self.family == "fusion" else None

    def compute(self) -> Callable[..., Any]:
        """The `rows` function (imported now)."""
        module, _, function = self.rows.partition(":")
        return getattr(importlib.import_module(module), function)


FUSION = ("l2(l2(text) + l2(vision)); where the class has no exemplars, its vision direction is estimated as "
          "l2(l2(text) + the mean text-to-vision gap of the classes with exemplars)")

KINDS: dict[str, ClassifierKind] = {k.name: k for k in (
    ClassifierKind("text", "clip", "float32", ("prompts",),
                   "mean of the CLIP text embeddings of each class's prompts (Detic's recipe)",
                   ("prompt", "fix_space", "use_underscore", "avg_synonyms", "use_wn_name", "source",
                    "sentences_per_class"),
                   rows="mmovod.classifiers.text:sentence_classifier", handoff=3),
    ClassifierKind("descriptions", "clip", "float32", ("descriptions",),
                   "mean of the CLIP text embeddings of each class's descriptions",
                   ("source", "sentences_per_class", "combine"),
                   rows="mmovod.classifiers.text:sentence_classifier", handoff=2),
    ClassifierKind("vision-average", "clip", "float32", ("exemplars",),
                   "mean of the raw CLIP image embeddings of K x num_views views",
                   VISION_DETAILS, rows="mmovod.classifiers.vision:average_classifier"),
    ClassifierKind("vision-aggregated", "aggregator", "float16", ("exemplars", "aggregator"),
                   "visual aggregator over the raw CLIP image embeddings of K x num_views views",
                   (*VISION_DETAILS, "aggregator", "num_layers"), rows="mmovod.classifiers.vision:aggregated_classifier",
                   context=AGGREGATOR_CONTEXT),
    ClassifierKind("multi-modal-average", "clip", "float32", ("vision-average",), FUSION,
                   ("sources", "formula", "text_only_classes", "text_only_rule"),
                   rows="mmovod.classifiers.fusion:fuse_with_text_fallback", normalized=True, handoff=1, sidecar_kind="multi-modal"),
    ClassifierKind("multi-modal-aggregated", "mixed", "float32", ("vision-aggregated",), FUSION,
                   ("sources", "formula", "text_only_classes", "text_only_rule"),
                   rows="mmovod.classifiers.fusion:fuse_with_text_fallback", normalized=True, handoff=0, sidecar_kind="multi-modal"),
    ClassifierKind("multi-modal", "clip", "float32", ("feat1", "feat2"),
                   "l2(l2(feat1) + l2(feat2)) of two classifier files", ("formula", "sources"), built=False),
    ClassifierKind("other", "clip", "float32", (), "made outside mmovod", (), built=False),
)}


def built() -> tuple[str, ...]:
    """What `build_classifiers` can make, in the order it makes them."""
    return tuple(name for name, kind in KINDS.items() if kind.built)


def sidecar_kinds() -> tuple[str, ...]:
    """The values of a sidecar's `kind`."""
    return tuple(dict.fromkeys(kind.sidecar_kind or name for name, kind in KINDS.items()))


def handoff_preference() -> tuple[str, ...]:
    """The kinds a build may hand to a detector, most preferred first."""
    return tuple(sorted((n for n, k in KINDS.items() if k.handoff is not None), key=lambda n: KINDS[n].handoff))


def exportable() -> tuple[str, ...]:
    """The built kinds a prompt-embedding detector can use (the aggregated ones when their aggregator was
    trained for CLIP's space)."""
    return tuple(name for name in built() if "clip" in KINDS[name].spaces)
