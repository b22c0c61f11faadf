"""One step from a vocabulary (and photos) to every classifier: CLIP loaded once, images decoded once, resumable.

Writes into an output folder, rows in vocabulary order, each `.npy` with its sidecar
(`mmovod.classifiers.sidecar`):
  text.npy                    class-name prompts, Detic's recipe (prompt, fix_space, use_underscore,
                              avg_synonyms as in dump_clip_features.py), float32, not normalised
  descriptions.npy            mean embedding of each class's descriptions (when there are any), float32
  vision-average.npy          mean raw CLIP embedding of each class's exemplars x num_views TTA views
                              (context 0.4, as get_exemplars_tta.py), float32
  vision-aggregated.npy       the visual aggregator over each class's views (context 0.2, as
                              generate_vision_classifier_agg.py), float16; with an aggregator checkpoint
  multi-modal-average.npy     l2(l2(descriptions, else text) + l2(vision-average)), float32
  multi-modal-aggregated.npy  the same with vision-aggregated
  vocabulary.json             the class order and, per class, what went into each row
  exemplars.json              the exemplar list used (get_exemplars_tta.py reads it when every class has exemplars)
Which of these a build makes, and how each is computed, is the table of classifier kinds
(`mmovod.classifiers.kinds`, the rows with `built`). A class without exemplars has a zero row in the vision classifiers (the sidecar lists it) and a
text-only row, l2(text), in the multi-modal ones.

Both vision classifiers come from one pass over the images (`mmovod.vocabulary.encoding`): each
image is decoded once, and when the two crops of an exemplar coincide (whole images) and both use
TTA views, those views are made and encoded once for both.

Resumable: each sidecar's `details.fingerprint` hashes what its rows depend on (CLIP model and
weights file, class names, sentences, each exemplar image's path, size, mtime and box, view
settings (order and --skip-bad included), aggregator file; a fusion: its inputs' fingerprints). A re-run recomputes only the stages
whose fingerprint changed and loads CLIP only when one of them needs it. Everything is computed
before anything is written, so a failed run leaves earlier outputs as they were.
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import orjson
import torch

from mmovod.aggregator.model import VisualAggregator
from mmovod.classifiers.check import clip_embed_dim
from mmovod.classifiers.kinds import KINDS, ClassifierKind, built, handoff_preference
from mmovod.classifiers.sidecar import ClassifierSidecar, make_sidecar, read_sidecar, save_classifier
from mmovod.classifiers.text_inputs import PromptSpec, class_prompts
from mmovod.classifiers.vision import check_aggregator_fits
from mmovod.clip.crops import TTA_CONTEXT
from mmovod.clip.factory import resolve_device, resolve_model_name
from mmovod.clip.image_encoding import ExemplarEmbeddings
from mmovod.clip.specs import ClipSpec, ViewSpec
from mmovod.evaluation.leave_one_out import JudgedKind
from mmovod.io.arrays import load_matrix
from mmovod.io.atomic import check_output_dir, make_output_dir, write_bytes_atomic
from mmovod.io.errors import InputError, interruption_keeps
from mmovod.io.json_files import dumps_json
from mmovod.readers.vocabulary import Vocabulary
from mmovod.vocabulary.encoding import encode_view_sets
from mmovod.vocabulary import judging
from mmovod.vocabulary.exemplar_folders import ExemplarSet
from mmovod.vocabulary.export import check_exportable, detic_config_lines, export_prompt_embeddings
from mmovod.vocabulary.report import write_report

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
AVERAGE, AGGREGATED = "vision-average", "vision-aggregated"
"""The two vision kinds leave-one-out judging treats as its averaged and aggregated roles."""


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
    also write as prompt embeddings."""

    clip: ClipSpec
    text: PromptSpec = PromptSpec()
    views: ViewSpec = ViewSpec(num_views=5, tta=True, context=TTA_CONTEXT)
    aggregator: AggregatorSettings | None = None
    require_exemplars: bool = False
    export: tuple[str, ...] = ()
    report: bool = False
    judge: bool = False


@dataclass
class BuildInputs:
    """What the classifiers are built from; `descriptions` per class (None: no description classifier)."""

    vocab: Vocabulary
    exemplars: ExemplarSet
    descriptions: list[list[str]] | None = None
    descriptions_source: str | None = None


@dataclass
class BuildResult:
    """What a build wrote (`files` by stage), which stages it computed and which it reused."""

    out_dir: Path
    files: dict[str, Path]
    computed: list[str]
    reused: list[str]
    without_exemplars: list[str]
    handoff: str
    detic_lines: list[str]
    exports: dict[str, Path] = field(default_factory=dict)
    report: Path | None = None
    judged: dict[str, Any] | None = None


def digest(obj: Any) -> str:
    """A stable hash of a JSON-able object (sorted keys)."""
    return hashlib.sha256(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)).hexdigest()


def file_signature(path: str | os.PathLike) -> list[Any]:
    """(path, size, mtime) of a file: what a fingerprint records of a large input instead of its bytes."""
    st = Path(path).stat()
    return [str(path), st.st_size, st.st_mtime_ns]


def clip_description(spec: ClipSpec) -> dict[str, Any]:
    """What `ClipBundle.describe()` will say about `spec`, without loading weights."""
    return {"clip_model": spec.model, "pretrained": resolve_model_name(spec.model, spec.pretrained)[1],
            "embed_dim": clip_embed_dim(spec.model)}


def clip_identity(spec: ClipSpec) -> dict[str, Any]:
    """What the embeddings depend on: the model, its weights and the files naming them."""
    described = clip_description(spec)
    files = [file_signature(p) for p in (spec.model, described["pretrained"]) if p and Path(p).is_file()]
    return {"model": spec.model, "pretrained": described["pretrained"], "files": files}


def prepare_out_dir(out_dir: str | os.PathLike, create: bool = True) -> Path:
    """The output folder, checked to be a writable folder or creatable (its parent exists and is
    writable), and created if `create`."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: --out-dir is a file, not a folder")
    return make_output_dir(out) if create else check_output_dir(out)


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


def _reusable(path: Path, fingerprint: str) -> tuple[np.ndarray, ClassifierSidecar] | None:
    """The array and sidecar at `path` when they exist, agree, and were made with `fingerprint`."""
    try:
        sidecar = read_sidecar(path)
        if sidecar is None or sidecar.details.get("fingerprint") != fingerprint:
            return None
        array = load_matrix(path)
    except InputError:
        return None
    if tuple(array.shape) != tuple(sidecar.shape) or str(array.dtype) != sidecar.dtype:
        return None
    return array, sidecar


def _exemplar_identity(exemplars: ExemplarSet) -> list[list[list[Any]]]:
    return [[[*file_signature(r["file_name"]), r.get("bbox")] for r in records] for records in exemplars.records]


def kind_views(kind: ClassifierKind, settings: BuildSettings) -> ViewSpec:
    """The views a vision kind is computed from: the build's, with the kind's own context, and the
    aggregator's TTA choice for a kind that needs the aggregator."""
    view = settings.views if kind.context is None else replace(settings.views, context=kind.context)
    if "aggregator" in kind.needs:
        view = replace(view, tta=settings.aggregator.tta)
    return view


class _Plan:
    """The kinds a build can make from its inputs (`mmovod.classifiers.kinds`, in table order), with
    fingerprints, and which of them must be computed."""

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
            "exemplars": lambda: _exemplar_identity(inputs.exemplars),
            "aggregator": lambda: [file_signature(settings.aggregator.path), settings.aggregator.num_layers],
        }
        # the sidecars record class names, ids and flags, so those are part of every fingerprint too
        base = {"clip": clip_identity(settings.clip), "classes": vocab.names, "ids": [c.category_id for c in vocab.classes]}
        prints: dict[str, str] = {}
        for name in built():
            kind = KINDS[name]
            if not all(available.get(need, need in prints) for need in kind.needs):
                continue
            if kind.family == "fusion":
                prints[name] = digest({"stage": name, "text": prints[self.text_source], "vision": prints[kind.fuses]})
                continue
            doc = {**base, "stage": name, **{need: identity[need]() for need in kind.needs}}
            if kind.family == "vision":
                self.views[name] = kind_views(kind, settings)
                doc["views"] = self.views[name].provenance()
            prints[name] = digest(doc)
            if kind.family == "text":
                self.text_source = min((n for n in prints if KINDS[n].family == "text"), key=lambda n: KINDS[n].handoff)
        self.stages = {name: Stage(KINDS[name], fp, out / f"{name}.npy") for name, fp in prints.items()}
        for stage in self.stages.values():
            found = _reusable(stage.path, stage.fingerprint)
            if found is not None:
                stage.array, stage.sidecar = found
                stage.reused = True

    def of(self, family: str) -> list[str]:
        return [n for n, s in self.stages.items() if s.kind.family == family]

    def stale(self, *names: str) -> list[str]:
        return [n for n in names if n in self.stages and not self.stages[n].reused]


def _check_request(inputs: BuildInputs, settings: BuildSettings, planned: Sequence[str]) -> None:
    """Refuse, before any work, what the build cannot do as asked."""
    without = inputs.exemplars.classes_without()
    names = inputs.vocab.names
    if settings.require_exemplars and without:
        raise InputError(f"{len(without)} of {len(names)} classes have no exemplars (--require-exemplars): "
                         + ", ".join(repr(names[i]) for i in without[:10]) + (" ..." if len(without) > 10 else ""))
    for name in settings.export:
        kind = KINDS[name]
        check_exportable(name, kind.space, f"--export {name}")
        if name not in planned:
            raise InputError(f"--export {name}: this build makes no {name} classifier "
                             f"(it makes {', '.join(planned)})")
        if kind.family == "vision" and without:
            fused = next(n for n in built() if KINDS[n].fuses == name)
            raise InputError(f"--export {name}: {len(without)} classes have no exemplars and so no row "
                             f"({names[without[0]]!r} first); export {fused} instead")


def _load_aggregator(settings: BuildSettings) -> VisualAggregator | None:
    if settings.aggregator is None:
        return None
    aggregator = VisualAggregator.from_checkpoint(settings.aggregator.path, num_layers=settings.aggregator.num_layers)
    check_aggregator_fits(aggregator, settings.clip.model, clip_embed_dim(settings.clip.model), settings.aggregator.path)
    return aggregator


def _vision_rows(encoded: ExemplarEmbeddings, classes: int) -> np.ndarray:
    """Boolean `(C,)`: classes with at least one valid exemplar."""
    counts = torch.bincount(encoded.class_of[encoded.valid], minlength=classes)
    return (counts > 0).numpy()


def _write_if_changed(path: Path, payload: bytes) -> None:
    if not path.is_file() or path.read_bytes() != payload:
        write_bytes_atomic(path, payload)


def _text_details(kind: ClassifierKind, need: str, inputs: BuildInputs, settings: BuildSettings,
                  sentences: list[list[str]]) -> dict[str, Any]:
    """A text kind's provenance: the prompt recipe of class-name prompts, or where the descriptions came from."""
    if need == "prompts":
        recipe = settings.text.details()
        source: Any = {"vocabulary": str(inputs.vocab.path)}
    else:
        recipe, source = {"combine": kind.computed}, inputs.descriptions_source
    return {"source": source, **recipe, "sentences_per_class": [len(s) for s in sentences]}


def build_classifiers(inputs: BuildInputs, settings: BuildSettings, out_dir: str | os.PathLike,
                      command: str | None = None) -> BuildResult:
    """Build (or reuse) every classifier of the module docstring for `inputs` into `out_dir`."""
    out = prepare_out_dir(out_dir, create=False)  # created only once there is something to write
    aggregator = _load_aggregator(settings)
    plan = _Plan(inputs, settings, out, aggregator)
    if settings.judge:  # judging needs the view embeddings: kept from an earlier build, else encoded again
        kept = judging.stored_fingerprints(out)
        for name in (AVERAGE, AGGREGATED):
            if name in plan.stages and kept.get(name) != plan.stages[name].fingerprint:
                plan.stages[name].reused = False
    _check_request(inputs, settings, list(plan.stages))
    vocab, exemplars = inputs.vocab, inputs.exemplars
    stale_text = plan.stale(*plan.of("text"))
    stale_vision = plan.stale(*plan.of("vision"))
    encoded: dict[str, ExemplarEmbeddings] = {}
    bundle = None
    if stale_text or stale_vision or settings.report:
        tower = "both" if stale_text and stale_vision else ("image" if stale_vision else "text")
        bundle = settings.clip.load(tower)
        log.info("loaded %s on %s (%s tower%s) for %s", settings.clip.model, bundle.device, tower,
                 "s" if tower == "both" else "", ", ".join(stale_text + stale_vision) or "the report")
    clip = clip_description(settings.clip)
    ids = [c.category_id for c in vocab.classes]
    category_ids = ids if any(i is not None for i in ids) else None
    names = vocab.names
    synonyms = [list(c.synonyms) for c in vocab.classes]  # the evaluation matches rows to categories by these too
    named = {"class_synonyms": synonyms} if any(synonyms) else {}

    def finish(name: str, array: np.ndarray, details: dict[str, Any]) -> None:
        stage = plan.stages[name]
        kind = stage.kind
        stage.array = array.astype(kind.dtype)
        stage.sidecar = make_sidecar(stage.array, kind.sidecar_kind or name, clip, space=kind.space,
                                     normalized=kind.normalized, details={"fingerprint": stage.fingerprint, **named, **details},
                                     class_names=names, category_ids=category_ids, command=command)

    for name in stale_text:
        need = next(n for n in KINDS[name].needs if n in plan.sentences)
        sentences = plan.sentences[need]
        finish(name, KINDS[name].compute()(sentences, bundle, progress=True),
               _text_details(KINDS[name], need, inputs, settings, sentences))
    if stale_vision:
        encoded = dict(zip(stale_vision, encode_view_sets(bundle, exemplars.records, [plan.views[n] for n in stale_vision],
                                                          batch_size=settings.clip.batch_size)))
        for name, emb in encoded.items():
            kind, view = KINDS[name], plan.views[name]
            has = _vision_rows(emb, len(vocab))
            uses_aggregator = "aggregator" in kind.needs
            extra = {"aggregator": aggregator, "num_views": view.num_views, "device": bundle.device} if uses_aggregator else {}
            rows = np.where(has[:, None], kind.compute()(emb, **extra), 0)  # no readable exemplar: a zero row
            details = {**view.provenance(), "exemplars_per_class": [len(r) for r in exemplars.records],
                       "classes_without_exemplars": [n for n, h in zip(names, has) if not h],
                       "skipped_images": [{**s, "class": names[s["class"]]} for s in emb.skipped]
                       + [{**s, "exemplar": None} for s in exemplars.skipped],
                       "combine": kind.computed}
            if uses_aggregator:
                details.update(aggregator=settings.aggregator.path, num_layers=settings.aggregator.num_layers)
            finish(name, rows, details)
    text_stage = plan.stages.get(plan.text_source)
    for name in plan.stale(*plan.of("fusion")):
        kind = KINDS[name]
        vision = plan.stages[kind.fuses]
        finish(name, kind.compute()(text_stage.array, vision.array), {
            "sources": {"text": text_stage.path.name, "vision": vision.path.name}, "formula": kind.computed,
            "text_only_classes": [n for n, h in zip(names, vision.array.any(axis=1)) if not h]})
    computed = [s.name for s in plan.stages.values() if not s.reused]
    saved: list[str] = []  # an interrupted build names the classifiers it wrote: the next run reuses them
    with interruption_keeps(lambda: f"{', '.join(saved)} ({len(saved)} of {len(computed)} classifiers, each with its "
                                    f"sidecar) {'is' if len(saved) == 1 else 'are'} written to {out}" if saved else None,
                            "run the same command again to reuse them and finish the build"):
        prepare_out_dir(out)
        for stage in plan.stages.values():
            if not stage.reused:
                save_classifier(stage.path, stage.array, stage.sidecar)
                saved.append(stage.path.name)
        without = _without(plan, names, exemplars)
        if any(exemplars.records):
            _write_if_changed(out / "exemplars.json", dumps_json(exemplars.records, indent=True))
        _write_if_changed(out / "vocabulary.json", dumps_json(_vocabulary_doc(inputs, settings, plan, without), indent=True))
        handoff = next(n for n in handoff_preference() if n in plan.stages)
        main = plan.stages[handoff]
        result = BuildResult(out, {n: s.path for n, s in plan.stages.items()}, computed,
                             [s.name for s in plan.stages.values() if s.reused], without, handoff,
                             detic_config_lines(main.path, len(vocab), main.array.shape[1]))
        for name in settings.export:
            make_output_dir(out / "export")
            stage = plan.stages[name]
            result.exports[name] = out / "export" / f"{name}.npy"
            export_prompt_embeddings(stage.array, stage.sidecar, result.exports[name], str(stage.path), command)
        if settings.judge and AVERAGE in plan.stages:
            result.judged = _judge(plan, inputs, settings, encoded, aggregator, out, command)
        if settings.report:
            skipped = plan.stages[AVERAGE].sidecar.details["skipped_images"] if AVERAGE in plan.stages else exemplars.skipped
            shown = {"vocabulary": f"{vocab.path} ({vocab.format})", **clip_description(settings.clip),
                     "views": settings.views.provenance(), "aggregator": settings.aggregator and settings.aggregator.path,
                     "command": command, "built": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
            result.report = write_report(out / "report", vocab, exemplars.records, bundle, settings.views, main.array,
                                         handoff, unmatched=exemplars.unmatched, skipped=skipped, judged=result.judged,
                                         settings=shown)
        return result


def _judge(plan: _Plan, inputs: BuildInputs, settings: BuildSettings, encoded: dict[str, ExemplarEmbeddings],
           aggregator: VisualAggregator | None, out: Path, command: str | None) -> dict[str, Any]:
    """Leave-one-out judgement of every stage (`mmovod.vocabulary.judging`), from the views this build
    encoded or, for reused stages, the ones an earlier build kept."""
    vision = {n: plan.stages[n].fingerprint for n in (AVERAGE, AGGREGATED) if n in plan.stages}
    encoded = {**judging.load_embeddings(out, {n: f for n, f in vision.items() if n not in encoded}, len(inputs.vocab)),
               **encoded}
    judging.save_embeddings(out, encoded, vision)
    text = plan.stages[plan.text_source].array
    fusions = {n: KINDS[n].fuses for n in plan.of("fusion")}
    kinds = [JudgedKind(n, s.array, vision={AVERAGE: "average", AGGREGATED: "aggregated"}.get(fusions.get(n, n)),
                        text=text if n in fusions else None, space="aggregator" if n == AGGREGATED else "clip")
             for n, s in plan.stages.items()]
    return judging.judge_build(out, inputs.vocab.names, inputs.exemplars.records, {n: s.array for n, s in plan.stages.items()},
                               kinds, encoded, average=AVERAGE, aggregated=AGGREGATED, aggregator=aggregator,
                               num_views=settings.views.num_views, device=resolve_device(settings.clip.device),
                               command=command)


def _without(plan: _Plan, names: list[str], exemplars: ExemplarSet) -> list[str]:
    """Classes without a vision row: no exemplars, or none readable."""
    vision = plan.of("vision")
    if vision:
        return [n for n, has in zip(names, plan.stages[vision[0]].array.any(axis=1)) if not has]
    return [names[i] for i in exemplars.classes_without()]


def _vocabulary_doc(inputs: BuildInputs, settings: BuildSettings, plan: _Plan, without: list[str]) -> dict[str, Any]:
    """vocabulary.json: the class order and, per class, what went into each row."""
    vocab, exemplars = inputs.vocab, inputs.exemplars
    text_source, vision = plan.text_source, plan.of("vision")
    skipped: dict[str, list[dict[str, Any]]] = {}
    for name in vision:
        for item in plan.stages[name].sidecar.details.get("skipped_images", []):
            skipped.setdefault(item["class"], []).append({"path": item["path"], "reason": item["reason"]})
    classes = []
    for i, cls in enumerate(vocab.classes):
        has_vision = cls.name not in without and bool(vision)
        classes.append({
            "index": i, "name": cls.name, "synonyms": list(cls.synonyms), "category_id": cls.category_id,
            "defined_at": cls.where,
            "text": {"sentences": plan.sentences["prompts"][i]},
            "descriptions": {"sentences": inputs.descriptions[i]} if inputs.descriptions is not None else None,
            "exemplars": [{"image": r["file_name"], "bbox": r.get("bbox"), "source": r.get("source"),
                           "area": r.get("area")} for r in exemplars.records[i]
                          if r["file_name"] not in {s["path"] for s in skipped.get(cls.name, [])}],
            "exemplar_candidates": exemplars.candidates[i],
            "skipped_images": skipped.get(cls.name, []),
            "multi_modal": (f"{text_source} + vision" if has_vision else f"{text_source} only (no exemplars)")
            if vision else None,
        })
    return {
        "schema_version": SCHEMA_VERSION,
        "vocabulary": {"path": str(vocab.path), "format": vocab.format, "classes": len(vocab)},
        "files": {name: stage.path.name for name, stage in plan.stages.items()},
        "classes_without_exemplars": without,
        "unmatched_exemplar_folders": exemplars.unmatched,
        "ignored_files": exemplars.ignored_files,
        "settings": {"clip": {"clip_model": settings.clip.model, "pretrained": settings.clip.pretrained},
                     "text": asdict(settings.text),
                     "views": settings.views.provenance(),
                     "aggregator": asdict(settings.aggregator) if settings.aggregator else None,
                     "descriptions": inputs.descriptions_source},
        "classes": classes,
    }
