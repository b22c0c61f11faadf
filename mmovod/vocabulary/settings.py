"""What a vocabulary build is asked to do: its inputs (`BuildInputs`) and how to build (`BuildSettings`)."""
from __future__ import annotations

from dataclasses import dataclass

from mmovod.classifiers.text_inputs import PromptSpec
from mmovod.clip.crops import TTA_CONTEXT
from mmovod.clip.specs import ClipSpec, ViewSpec
from mmovod.readers.vocabulary_file import Vocabulary
from mmovod.vocabulary.exemplar_folders import ExemplarSet


@dataclass(frozen=True)
class AggregatorSettings:
    """The visual aggregator checkpoint, its depth, and whether its views are TTA views."""

    path: str
    num_layers: int = 4
    tta: bool = True


@dataclass(frozen=True)
class BuildSettings:
    """How to build. `clip.batch_size`: image views per forward pass (text batches take the text
    encoder's default); `text`: the class-name prompt recipe; `views`: the vision classifiers' view
    settings (context, num_views, seed, workers, skip_bad; a kind with its own `context` in
    `mmovod.classifiers.kinds` uses that, and the aggregated one `aggregator.tta`); `export`: kinds to
    also hand off in `export_format` (a key of `mmovod.handoff.formats.FORMATS`); `judge`: leave-one-out
    judging (None: when it encodes nothing more than the build does); `prefer`: the kind to hand off
    whatever the judgement."""

    clip: ClipSpec
    text: PromptSpec = PromptSpec()
    views: ViewSpec = ViewSpec(num_views=5, tta=True, context=TTA_CONTEXT)
    aggregator: AggregatorSettings | None = None
    require_exemplars: bool = False
    export: tuple[str, ...] = ()
    export_format: str = "yolo-world"
    report: bool = False
    judge: bool | None = None
    prefer: str | None = None


@dataclass
class BuildInputs:
    """What the classifiers are built from; `descriptions` per class (None: no description classifier)."""

    vocab: Vocabulary
    exemplars: ExemplarSet
    descriptions: list[list[str]] | None = None
    descriptions_source: str | None = None
