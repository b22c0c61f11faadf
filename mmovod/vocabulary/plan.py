"""The plan of a vocabulary build: which classifier kinds its inputs allow (`mmovod.classifiers.kinds`,
in table order), each one's fingerprint and file, which are reused from an earlier build and which
must be computed, and the refusal, before any work, of what it cannot do as asked."""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from mmovod.aggregator.model import VisualAggregator
from mmovod.classifiers.kinds import KINDS, ClassifierKind, built, text_source
from mmovod.classifiers.sidecar import ClassifierSidecar
from mmovod.classifiers.text_inputs import class_prompts
from mmovod.clip.specs import ViewSpec
from mmovod.handoff.formats import FORMATS, check_space
from mmovod.io.errors import InputError
from mmovod.io.wording import plural
from mmovod.vocabulary.fingerprints import clip_identity, digest, exemplar_identity, file_signature, reusable
from mmovod.vocabulary.settings import BuildInputs, BuildSettings


@dataclass
class Stage:
    """One classifier of the build: its kind, file, fingerprint, and array (once computed or reused)."""

    kind: ClassifierKind
    fingerprint: str
    path: Path
    array: np.ndarray | None = None
    sidecar: ClassifierSidecar | None = None
    reused: bool = False

    @property
    def name(self) -> str:
        return self.kind.name


def kind_views(kind: ClassifierKind, settings: BuildSettings) -> ViewSpec:
    """The views a vision kind is computed from: the build's, with the kind's own context, and the
    aggregator's TTA choice for a kind that needs the aggregator."""
    view = settings.views if kind.context is None else replace(settings.views, context=kind.context)
    if "aggregator" in kind.needs:
        view = replace(view, tta=settings.aggregator.tta)
    return view


class Plan:
    """The kinds a build can make from its inputs (`mmovod.classifiers.kinds`, in table order), with
    fingerprints, and which of them must be computed; `text_source`: the text stage a fusion that adds a
    vision kind takes (`kinds.text_source`)."""

    def __init__(self, inputs: BuildInputs, settings: BuildSettings, out: Path, aggregator: VisualAggregator | None):
        vocab = inputs.vocab
        cats = [c.as_category(i) for i, c in enumerate(vocab.classes)]
        self.sentences = {"prompts": class_prompts(cats, vocab.path, settings.text), "descriptions": inputs.descriptions}
        self.views: dict[str, ViewSpec] = {}
        has_exemplars = any(inputs.exemplars.records)
        available = {"prompts": True, "descriptions": inputs.descriptions is not None,
                     "exemplars": has_exemplars, "aggregator": aggregator is not None}
        identity = {  # what the rows depend on, per need
            "prompts": lambda: {"sentences": self.sentences["prompts"], "flags": asdict(settings.text)},
            "descriptions": lambda: {"sentences": inputs.descriptions},
            "exemplars": lambda: exemplar_identity(inputs.exemplars),
            "aggregator": lambda: [file_signature(settings.aggregator.path), settings.aggregator.num_layers],
        }
        # the sidecars record class names, ids and flags, so those are part of every fingerprint too
        base = {"clip": clip_identity(settings.clip), "classes": vocab.names, "ids": [c.category_id for c in vocab.classes]}
        prints: dict[str, str] = {}
        for name in built():  # inputs first (text and vision kinds), then the fusions of what is planned
            kind = KINDS[name]
            if kind.family == "fusion" or not all(available[need] for need in kind.needs):
                continue
            doc = {**base, "stage": name, **{need: identity[need]() for need in kind.needs}}
            if kind.family == "vision":
                self.views[name] = kind_views(kind, settings)
                doc["views"] = self.views[name].provenance()
            prints[name] = digest(doc)
        self.text_source = text_source(prints)
        for name in built():
            kind = KINDS[name]
            if kind.family == "fusion" and all(need in prints for need in kind.needs):
                parts = kind.parts(self.text_source)
                prints[name] = digest({"stage": name, **{role: prints[part] for role, part in parts.items()}})
        prints = {name: prints[name] for name in built() if name in prints}  # table order
        self.stages = {name: Stage(KINDS[name], fp, out / f"{name}.npy") for name, fp in prints.items()}
        for stage in self.stages.values():
            found = reusable(stage.path, stage.fingerprint)
            if found is not None:
                stage.array, stage.sidecar = found
                stage.reused = True

    def of(self, family: str) -> list[str]:
        """The planned kinds of `family` (text, vision or fusion), in table order."""
        return [n for n, s in self.stages.items() if s.kind.family == family]

    def stale(self, *names: str) -> list[str]:
        """Those of `names` that are planned and must be computed (not reused)."""
        return [n for n in names if n in self.stages and not self.stages[n].reused]


def check_request(inputs: BuildInputs, settings: BuildSettings, planned: Sequence[str],
                  aggregator_space: str | None = None) -> None:
    """Refuse, before any work, what the build cannot do as asked (`aggregator_space`: where the loaded
    aggregator's outputs live, `VisualAggregator.space`)."""
    without = inputs.exemplars.classes_without()
    names = inputs.vocab.names
    if settings.require_exemplars and without:
        raise InputError(f"{len(without)} of {plural(len(names), 'class has', 'classes have')} no exemplars, and --require-exemplars "
                         "asks for them: "
                         + ", ".join(repr(names[i]) for i in without[:10]) + (" ..." if len(without) > 10 else ""))
    for name in settings.export:
        kind = KINDS[name]
        check_space(name, kind.space_with(aggregator_space), FORMATS[settings.export_format], f"--export {name}")
        if name not in planned:
            raise InputError(f"--export {name}: this build makes no {name} classifier "
                             f"(it makes {', '.join(planned)})")
        if kind.family == "vision" and without:
            fused = next((n for n in built() if KINDS[n].fuses == name), None)
            raise InputError(f"--export {name}: {plural(len(without), 'class has', 'classes have')} no exemplars and so no "
                             f"row, {names[without[0]]!r} first; export {fused or 'a text kind'} instead")
