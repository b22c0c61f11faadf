"""The classifier kinds: one table (`KINDS`), read by the sidecar, the vocabulary build, its judge, the
evaluation, the report, the export, the check and the tools.

A row says what a kind is: the `space` its rows live in (`clip`: CLIP's joint embedding space;
`aggregator`: a visual aggregator's own output space; `mixed`: a fusion of rows from both; a kind that
uses the aggregator has the space its checkpoint was trained for, `space_with`), its
`dtype`, what it `needs` (inputs, or other kinds), how each row is computed (`computed`, recorded in
its sidecar, and `rows`, the function that computes them), the provenance keys of its sidecar
`details`, and whether a prompt-embedding detector can use it (`exportable`: CLIP-space rows only).

Rows of `build_classifiers` (`built`) are computed by `rows` (a "module:function" path, imported
only when the kind is built, so reading a sidecar does not import torch; or the function itself)
with one signature per `family`:
- text kinds (they need `prompts` or `descriptions`): `rows(sentences_per_class, clip, progress=...)`;
- vision kinds (they need `exemplars`): `rows(encoded)` (the exemplars' view embeddings), plus
  `aggregator, num_views, device` when they need the `aggregator`; `held_out(encoded, held_out, ...)`
  (same extras) rebuilds, for the leave-one-out judge, the row of each held-out exemplar's class
  without it (`(N, D)` float64; None: `rows` is run on the class's other exemplars, one photo at a time);
- fusions (they need other kinds): `rows(*parts)`, the rows of the kinds of `parts()` in order; a
  fusion that adds a vision kind (`fuses`) takes the build's text source first (the planned kind of
  lowest `text_source`: descriptions, else the class-name prompts).

Adding a kind is one module holding its `rows` function and one `register_kind(ClassifierKind(...))`
(the shipped kinds are registered below; `unregister_kind` takes one out again). Everything derived
from the table (`built()`, `sidecar_kinds()`, ...) is computed when asked, from `KINDS` as it is then.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Iterable

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
    rows: str | Callable[..., Any] | None = None
    normalized: bool = False
    built: bool = True
    handoff: int | None = None
    """Preference as the build's hand-off to a detector (lowest first); None: never handed off."""
    context: float | None = None
    """A vision kind's crop context when it is not the build's own (`--context`)."""
    sidecar_kind: str | None = None
    """The sidecar's `kind` when it is not `name` (the build's fusions are `multi-modal` files)."""
    text_source: int | None = None
    """Preference as the text part of a fusion that adds a vision kind (lowest first); None: never."""
    held_out: str | Callable[..., Any] | None = None
    """A vision kind's leave-one-out rebuild (see the module docstring); None: the generic one."""

    @property
    def follows_aggregator(self) -> bool:
        """Whether the rows come (directly or through a kind they fuse) from the visual aggregator."""
        return "aggregator" in self.needs or any(KINDS[n].follows_aggregator for n in self.needs
                                                 if n in KINDS and n != self.name)

    def space_with(self, aggregator_space: str | None) -> str:
        """The space of the rows when made with an aggregator whose outputs live in `aggregator_space`
        (`VisualAggregator.space`; None: unknown, the table's `space`)."""
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
        """"text", "vision" or "fusion": which inputs the build prepares for `rows` (a fusion needs only other
        kinds; a vision kind, exemplars; a text kind, prompts or descriptions)."""
        if self.needs and all(n in KINDS and n != self.name for n in self.needs):
            return "fusion"
        if set(self.needs) & set(TEXT_INPUTS):
            return "text"
        return "vision" if "exemplars" in self.needs else "fusion"

    @property
    def fuses(self) -> str | None:
        """The vision kind a fusion adds to the text rows."""
        if self.family != "fusion":
            return None
        return next((n for n in self.needs if n in KINDS and KINDS[n].family == "vision"), None)

    def parts(self, text_source: str | None) -> dict[str, str]:
        """A fusion's inputs, role -> kind, in the order `rows` takes them: the text source (`text_source`,
        the build's) and the vision kind for a fusion that adds one, else its needs."""
        if self.fuses is not None:
            return {"text": text_source, "vision": self.fuses}
        return {n: n for n in self.needs}

    def compute(self) -> Callable[..., Any]:
        """The `rows` function (imported now)."""
        return _resolve(self.rows)

    def held_out_rows(self) -> Callable[..., Any] | None:
        """The `held_out` function (imported now), or None."""
        return None if self.held_out is None else _resolve(self.held_out)


def _resolve(function: str | Callable[..., Any]) -> Callable[..., Any]:
    """A "module:function" path imported (looked up now, so a patched function is found), or the function."""
    if callable(function):
        return function
    module, _, name = function.partition(":")
    return getattr(importlib.import_module(module), name)


FUSION_DETAILS = ("sources", "formula", "text_only_classes", "text_only_rule")
"""Provenance of a fusion that adds a vision kind; a fusion of other kinds records `sources` and `formula`."""
FUSION = ("l2(l2(text) + l2(vision)); where the class has no exemplars, its vision direction is estimated as "
          "l2(l2(text) + the mean text-to-vision gap of the classes with exemplars)")
ENSEMBLE = "(l2(text) + l2(descriptions)) / 2: the mean of the unit class-name prompt row and the unit descriptions row"

KINDS: dict[str, ClassifierKind] = {}
"""The table, by name, in the order the build makes the kinds (the order they were registered)."""


def register_kind(kind: ClassifierKind) -> ClassifierKind:
    """Add `kind` to the table (after the others) and return it; ValueError for a name already taken, a
    space not in SPACES, or a built kind without `rows` or with a need that is neither an input nor a kind."""
    inputs = (*TEXT_INPUTS, "exemplars", "aggregator")
    if kind.name in KINDS:
        raise ValueError(f"classifier kind {kind.name!r} is already in the table")
    if kind.space not in SPACES:
        raise ValueError(f"classifier kind {kind.name!r}: space {kind.space!r} is not one of {', '.join(SPACES)}")
    unknown = [n for n in kind.needs if n not in inputs and n not in KINDS]
    if kind.built and (unknown or kind.rows is None):
        raise ValueError(f"classifier kind {kind.name!r}: " + (f"needs {unknown[0]!r}, neither an input "
                         f"({', '.join(inputs)}) nor a kind in the table" if unknown else "a built kind needs `rows`"))
    KINDS[kind.name] = kind
    return kind


def unregister_kind(name: str) -> ClassifierKind:
    """Take the kind `name` out of the table (KeyError when it is not there) and return it."""
    return KINDS.pop(name)


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


def text_source(planned: Iterable[str]) -> str | None:
    """Of the `planned` kinds, the text part of a fusion that adds a vision kind (lowest `text_source`)."""
    sources = [n for n in planned if KINDS[n].text_source is not None]
    return min(sources, key=lambda n: KINDS[n].text_source) if sources else None


def judge_queries() -> str | None:
    """The vision kind whose view embeddings are the leave-one-out judge's photo queries: the first built one
    whose rows are CLIP image embeddings as they are (CLIP space, not through the aggregator)."""
    return next((n for n in built() if KINDS[n].family == "vision" and KINDS[n].space == "clip"
                 and not KINDS[n].follows_aggregator), None)


register_kind(ClassifierKind("text", "clip", "float32", ("prompts",),
                             "mean of the CLIP text embeddings of each class's prompts (Detic's recipe)",
                             ("prompt", "fix_space", "use_underscore", "avg_synonyms", "use_wn_name", "source",
                              "sentences_per_class"),
                             rows="mmovod.classifiers.text:sentence_classifier", handoff=3, text_source=1))
register_kind(ClassifierKind("descriptions", "clip", "float32", ("descriptions",),
                             "mean of the CLIP text embeddings of each class's descriptions",
                             ("source", "sentences_per_class", "combine"),
                             rows="mmovod.classifiers.text:sentence_classifier", handoff=2, text_source=0))
register_kind(ClassifierKind("vision-average", "clip", "float32", ("exemplars",),
                             "mean of the raw CLIP image embeddings of K x num_views views", VISION_DETAILS,
                             rows="mmovod.classifiers.vision:average_classifier",
                             held_out="mmovod.classifiers.vision:held_out_average_rows"))
register_kind(ClassifierKind("vision-aggregated", "aggregator", "float16", ("exemplars", "aggregator"),
                             "visual aggregator over the raw CLIP image embeddings of K x num_views views",
                             (*VISION_DETAILS, "aggregator", "num_layers"),
                             rows="mmovod.classifiers.vision:aggregated_classifier",
                             held_out="mmovod.classifiers.vision:held_out_aggregated_rows", context=AGGREGATOR_CONTEXT))
register_kind(ClassifierKind("multi-modal-average", "clip", "float32", ("vision-average",), FUSION, FUSION_DETAILS,
                             rows="mmovod.classifiers.fusion:fuse_with_text_fallback", normalized=True, handoff=1,
                             sidecar_kind="multi-modal"))
register_kind(ClassifierKind("multi-modal-aggregated", "mixed", "float32", ("vision-aggregated",), FUSION,
                             FUSION_DETAILS, rows="mmovod.classifiers.fusion:fuse_with_text_fallback", normalized=True,
                             handoff=0, sidecar_kind="multi-modal"))
register_kind(ClassifierKind("multi-modal", "clip", "float32", ("feat1", "feat2"),
                             "l2(l2(feat1) + l2(feat2)) of two classifier files", ("formula", "sources"), built=False))
register_kind(ClassifierKind("other", "clip", "float32", (), "made outside mmovod", (), built=False))
register_kind(ClassifierKind("text-ensemble", "clip", "float32", ("text", "descriptions"), ENSEMBLE,
                             ("sources", "formula"),
                             rows="mmovod.classifiers.text_ensemble:ensemble_rows", handoff=4))
