"""The rows and sidecar provenance of one planned classifier of a build, by its kind's family
(`mmovod.classifiers.kinds`): a text kind from its sentences, a vision kind from its exemplars'
view embeddings (every stale vision kind's views encoded in one pass, when the first is computed),
a fusion from the rows of the stages it combines. `FAMILY_ROWS` is the one place a family is wired;
a kind of an existing family needs nothing here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from mmovod.aggregator.model import VisualAggregator
from mmovod.classifiers.fusion import text_only_rule
from mmovod.classifiers.kinds import ClassifierKind
from mmovod.clip.factory import ClipBundle
from mmovod.clip.image_encoding import ExemplarEmbeddings
from mmovod.vocabulary.view_sets import encode_view_sets
from mmovod.vocabulary.plan import Plan
from mmovod.vocabulary.settings import BuildInputs, BuildSettings


@dataclass
class BuildContext:
    """What every family's rows may read: the plan, the inputs and settings, CLIP (loaded when a stale
    stage needs it), the aggregator, and the view embeddings encoded so far (by vision stage)."""

    plan: Plan
    inputs: BuildInputs
    settings: BuildSettings
    bundle: ClipBundle | None
    aggregator: VisualAggregator | None
    encoded: dict[str, ExemplarEmbeddings] = field(default_factory=dict)


def _exemplar_list(kind: ClassifierKind, ctx: BuildContext) -> Path:
    """The exemplar list the build writes beside its classifiers (`exemplars.json`), which vision and
    multi-modal sidecars name."""
    return ctx.plan.stages[kind.name].path.parent / "exemplars.json"


def _text(kind: ClassifierKind, ctx: BuildContext) -> tuple[np.ndarray, dict[str, Any]]:
    """A text kind: its rows function on the sentences of its text need; the prompt recipe of class-name
    prompts, or where the descriptions came from."""
    need = next(n for n in kind.needs if n in ctx.plan.sentences)
    sentences = ctx.plan.sentences[need]
    if need == "prompts":
        recipe = ctx.settings.text.details()
        source: Any = {"vocabulary": str(ctx.inputs.vocab.path)}
    else:
        recipe, source = {"combine": kind.computed}, ctx.inputs.descriptions_source
    rows = kind.compute()(sentences, ctx.bundle, progress=True)
    return rows, {"source": source, **recipe, "sentences_per_class": [len(s) for s in sentences]}


def _vision(kind: ClassifierKind, ctx: BuildContext) -> tuple[np.ndarray, dict[str, Any]]:
    """A vision kind: its rows function on its views (a zero row for a class without a readable exemplar)."""
    plan, settings, exemplars = ctx.plan, ctx.settings, ctx.inputs.exemplars
    if kind.name not in ctx.encoded:  # the first stale vision kind: encode them all in one pass
        stale = plan.stale(*plan.of("vision"))
        ctx.encoded.update(zip(stale, encode_view_sets(ctx.bundle, exemplars.records, [plan.views[n] for n in stale],
                                                       batch_size=settings.clip.batch_size)))
    emb, view, names = ctx.encoded[kind.name], plan.views[kind.name], ctx.inputs.vocab.names
    has = (torch.bincount(emb.class_of[emb.valid], minlength=len(names)) > 0).numpy()
    uses_aggregator = "aggregator" in kind.needs
    extra = {"aggregator": ctx.aggregator, "num_views": view.num_views, "device": ctx.bundle.device} \
        if uses_aggregator else {}
    rows = np.where(has[:, None], kind.compute()(emb, **extra), 0)
    details = {**view.provenance(), "exemplars_per_class": [len(r) for r in exemplars.records],
               "classes_without_exemplars": [n for n, h in zip(names, has) if not h],
               "skipped_images": [{**s, "class": names[s["class"]]} for s in emb.skipped]
               + [{**s, "exemplar": None} for s in exemplars.skipped],
               "combine": kind.computed, "exemplar_list": str(_exemplar_list(kind, ctx))}
    if uses_aggregator:
        details.update(aggregator=settings.aggregator.path, num_layers=settings.aggregator.num_layers)
    return rows, details


def _fusion(kind: ClassifierKind, ctx: BuildContext) -> tuple[np.ndarray, dict[str, Any]]:
    """A fusion: its rows function on the rows of its parts; a fusion that adds a vision kind records the
    classes whose rows are text only."""
    parts = {role: ctx.plan.stages[name] for role, name in kind.parts(ctx.plan.text_source).items()}
    details: dict[str, Any] = {"sources": {role: stage.path.name for role, stage in parts.items()},
                               "formula": kind.computed}
    if kind.fuses is not None:
        names = ctx.inputs.vocab.names
        text_only = [n for n, h in zip(names, parts["vision"].array.any(axis=1)) if not h]
        details.update(exemplar_list=str(_exemplar_list(kind, ctx)), context=ctx.plan.views[kind.fuses].context,
                       text_only_classes=text_only, text_only_rule=text_only_rule(len(text_only), len(names)))
    return kind.compute()(*(stage.array for stage in parts.values())), details


FAMILY_ROWS: dict[str, Callable[[ClassifierKind, BuildContext], tuple[np.ndarray, dict[str, Any]]]] = {
    "text": _text, "vision": _vision, "fusion": _fusion}
"""Per family (`ClassifierKind.family`): the `(rows, details)` of a stale stage of that family."""


def stage_rows(kind: ClassifierKind, ctx: BuildContext) -> tuple[np.ndarray, dict[str, Any]]:
    """The rows of `kind` (not yet cast to its dtype) and the provenance its sidecar records."""
    return FAMILY_ROWS[kind.family](kind, ctx)
