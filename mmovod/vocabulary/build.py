"""One step from a vocabulary (and photos) to every classifier: CLIP loaded once, images decoded once, resumable.

Writes into an output folder, rows in vocabulary order, each `.npy` with its sidecar
(`mmovod.classifiers.sidecar`):
  text.npy                    class-name prompts, Detic's recipe (prompt, fix_space, use_underscore,
                              avg_synonyms as in dump_clip_features.py), float32, not normalised
  descriptions.npy            mean embedding of each class's descriptions (when there are any), float32
  vision-average.npy          mean raw CLIP embedding of each class's exemplars x num_augs TTA views
                              (context 0.4, as get_exemplars_tta.py), float32
  vision-aggregated.npy       the visual aggregator over each class's views (context 0.2, as
                              generate_vision_classifier_agg.py), float16; with an aggregator checkpoint
  multi-modal-average.npy     l2(l2(descriptions, else text) + l2(vision-average)), float32
  multi-modal-aggregated.npy  the same with vision-aggregated
  vocabulary.json             the class order and, per class, what went into each row
  exemplars.json              the exemplar list used (get_exemplars_tta.py reads it when every class has exemplars)
A class without exemplars has a zero row in the vision classifiers (the sidecar lists it) and a
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
from mmovod.classifiers.fusion import l2_normalise_rows
from mmovod.classifiers.sidecar import ClassifierSidecar, make_sidecar, read_sidecar, save_classifier
from mmovod.classifiers.text_inputs import PROMPTS, class_prompts
from mmovod.classifiers.text import sentence_classifier
from mmovod.classifiers.vision import aggregated_classifier, average_classifier
from mmovod.clip.crops import AGGREGATOR_CONTEXT, TTA_CONTEXT
from mmovod.clip.factory import resolve_device, resolve_model_name
from mmovod.clip.image_encoding import ExemplarEmbeddings
from mmovod.clip.specs import ClipSpec, ViewSpec
from mmovod.evaluation.leave_one_out import JudgedKind
from mmovod.io.arrays import load_matrix
from mmovod.io.atomic import write_bytes_atomic
from mmovod.io.errors import InputError
from mmovod.io.json_files import dumps_json
from mmovod.vocabulary.encoding import encode_view_sets
from mmovod.vocabulary import judging
from mmovod.vocabulary.exemplar_folders import ExemplarSet
from mmovod.vocabulary.export import check_exportable, detic_config_lines, export_prompt_embeddings
from mmovod.readers.vocabulary import Vocabulary
from mmovod.vocabulary.report import write_report
from mmovod.vocabulary.stages import AGGREGATED, AVERAGE, DESCRIPTIONS, MM_AGGREGATED, MM_AVERAGE, TEXT

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
FUSIONS = {MM_AVERAGE: AVERAGE, MM_AGGREGATED: AGGREGATED}
HANDOFF_PREFERENCE = (MM_AGGREGATED, MM_AVERAGE, DESCRIPTIONS, TEXT)


@dataclass(frozen=True)
class TextSettings:
    """Detic's class-name prompt options (dump_clip_features.py's flags)."""

    prompt: str = "a"
    fix_space: bool = False
    use_underscore: bool = False
    avg_synonyms: bool = False


@dataclass(frozen=True)
class AggregatorSettings:
    """The visual aggregator checkpoint, its depth, and whether its views are TTA views."""

    path: str
    num_layers: int = 4
    tta: bool = True


@dataclass(frozen=True)
class BuildSettings:
    """How to build. `clip.batch_size`: image views per forward pass (text batches take the text
    encoder's default); `views`: the averaged classifier's view settings (context, num_views, seed,
    workers, skip_bad; the aggregated one uses the same with context 0.2 and `aggregator.tta`);
    `export`: stages to also write as prompt embeddings."""

    clip: ClipSpec
    text: TextSettings = TextSettings()
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
    """The output folder, checked to be a folder or creatable (its parent exists), and created if `create`."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: --out-dir is a file, not a folder")
    if not out.exists():
        parent = out.parent if str(out.parent) else Path(".")
        if not parent.is_dir():
            raise InputError(f"{out}: output folder {parent} does not exist (create it first)")
        if create:
            out.mkdir()
    return out


@dataclass
class Stage:
    """One classifier of the build: its file, fingerprint, and array (once computed or reused)."""

    name: str
    fingerprint: str
    path: Path
    array: np.ndarray | None = None
    sidecar: ClassifierSidecar | None = None
    reused: bool = False


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


def _views_settings(view: ViewSpec) -> dict[str, Any]:
    """What of `view` a vision classifier's rows depend on: the views, and whether images may be skipped."""
    return {"context": view.context, "num_views": view.num_views, "tta": view.tta, "seed": view.seed,
            "view_order": view.order, "skip_bad": view.skip_bad}


def _exemplar_identity(exemplars: ExemplarSet) -> list[list[list[Any]]]:
    return [[[*file_signature(r["file_name"]), r.get("bbox")] for r in records] for records in exemplars.records]


class _Plan:
    """The stages a build needs, with fingerprints, and which of them must be computed."""

    def __init__(self, inputs: BuildInputs, settings: BuildSettings, out: Path, aggregator: VisualAggregator | None):
        vocab = inputs.vocab
        cats = [c.as_category(i) for i, c in enumerate(vocab.classes)]
        t = settings.text
        self.sentences = class_prompts(cats, vocab.path, t.prompt, t.fix_space, t.use_underscore, t.avg_synonyms)
        self.agg_view = None
        # the sidecars record class names, ids and flags, so those are part of every fingerprint too
        base = {"clip": clip_identity(settings.clip), "classes": vocab.names,
                "ids": [c.category_id for c in vocab.classes]}
        prints = {TEXT: digest({**base, "stage": TEXT, "sentences": self.sentences, "flags": asdict(t)})}
        if inputs.descriptions is not None:
            prints[DESCRIPTIONS] = digest({**base, "stage": DESCRIPTIONS, "sentences": inputs.descriptions})
        if any(inputs.exemplars.records):
            images = _exemplar_identity(inputs.exemplars)
            prints[AVERAGE] = digest({**base, "stage": AVERAGE, "images": images,
                                      "views": _views_settings(settings.views)})
            if aggregator is not None:
                a = settings.aggregator
                self.agg_view = replace(settings.views, context=AGGREGATOR_CONTEXT, tta=a.tta)
                prints[AGGREGATED] = digest({**base, "stage": AGGREGATED, "images": images,
                                             "views": _views_settings(self.agg_view),
                                             "aggregator": file_signature(a.path), "num_layers": a.num_layers})
        self.text_source = DESCRIPTIONS if DESCRIPTIONS in prints else TEXT
        for fused, vision in FUSIONS.items():
            if vision in prints:
                prints[fused] = digest({"stage": fused, "text": prints[self.text_source], "vision": prints[vision]})
        self.stages = {name: Stage(name, fp, out / f"{name}.npy") for name, fp in prints.items()}
        for stage in self.stages.values():
            found = _reusable(stage.path, stage.fingerprint)
            if found is not None:
                stage.array, stage.sidecar = found
                stage.reused = True

    def stale(self, *names: str) -> list[str]:
        return [n for n in names if n in self.stages and not self.stages[n].reused]


def _check_request(inputs: BuildInputs, settings: BuildSettings, planned: Sequence[str]) -> None:
    """Refuse, before any work, what the build cannot do as asked."""
    without = inputs.exemplars.classes_without()
    names = inputs.vocab.names
    if settings.require_exemplars and without:
        raise InputError(f"{len(without)} of {len(names)} classes have no exemplars (--require-exemplars): "
                         + ", ".join(repr(names[i]) for i in without[:10]) + (" ..." if len(without) > 10 else ""))
    for kind in settings.export:
        check_exportable(kind, "aggregator" if kind in (AGGREGATED, MM_AGGREGATED) else "clip", f"--export {kind}")
        if kind not in planned:
            raise InputError(f"--export {kind}: this build makes no {kind} classifier "
                             f"(it makes {', '.join(planned)})")
        if kind == AVERAGE and without:
            raise InputError(f"--export {kind}: {len(without)} classes have no exemplars and so no row "
                             f"({names[without[0]]!r} first); export {MM_AVERAGE} instead")


def _load_aggregator(settings: BuildSettings) -> VisualAggregator | None:
    if settings.aggregator is None:
        return None
    aggregator = VisualAggregator.from_checkpoint(settings.aggregator.path, num_layers=settings.aggregator.num_layers)
    dim = clip_embed_dim(settings.clip.model)
    if aggregator.dim != dim:
        raise InputError(f"{settings.aggregator.path}: the aggregator takes {aggregator.dim}-d embeddings but "
                         f"{settings.clip.model} gives {dim}-d ones (use the CLIP the aggregator was trained with)")
    return aggregator


def _vision_rows(encoded: ExemplarEmbeddings, classes: int) -> np.ndarray:
    """Boolean `(C,)`: classes with at least one valid exemplar."""
    counts = torch.bincount(encoded.class_of[encoded.valid], minlength=classes)
    return (counts > 0).numpy()


def _fuse(text: np.ndarray, vision: np.ndarray) -> np.ndarray:
    """l2(l2(text) + l2(vision)) per row; l2(text) where the vision row is zero (no exemplars)."""
    has = vision.any(axis=1)
    fused = l2_normalise_rows(text)
    fused[has] = l2_normalise_rows(fused[has] + l2_normalise_rows(vision[has]))
    return fused.astype(np.float32)


def _write_if_changed(path: Path, payload: bytes) -> None:
    if not path.is_file() or path.read_bytes() != payload:
        write_bytes_atomic(path, payload)


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
    stale_text = plan.stale(TEXT, DESCRIPTIONS)
    stale_vision = plan.stale(AVERAGE, AGGREGATED)
    bundle = None
    if stale_text or stale_vision or settings.report:
        tower = "both" if stale_text and stale_vision else ("image" if stale_vision else "text")
        bundle = settings.clip.load(tower)
        log.info("loaded %s on %s (%s tower%s) for %s", settings.clip.model, bundle.device, tower,
                 "s" if tower == "both" else "", ", ".join(stale_text + stale_vision) or "the report")
    clip = clip_description(settings.clip)
    ids = [c.category_id for c in vocab.classes]
    category_ids = ids if any(i is not None for i in ids) else None
    sidecar_args = {"class_names": vocab.names, "category_ids": category_ids, "command": command}
    names = vocab.names
    synonyms = [list(c.synonyms) for c in vocab.classes]  # the evaluation matches rows to categories by these too
    named = {"class_synonyms": synonyms} if any(synonyms) else {}

    def finish(name: str, array: np.ndarray, kind: str, space: str, normalized: bool, details: dict[str, Any]) -> None:
        stage = plan.stages[name]
        stage.array = array
        stage.sidecar = make_sidecar(array, kind, clip, space=space, normalized=normalized,
                                     details={"fingerprint": stage.fingerprint, **named, **details}, **sidecar_args)

    if TEXT in stale_text:
        t = settings.text
        finish(TEXT, sentence_classifier(plan.sentences, bundle, progress=True), "text", "clip", False, {
            "prompt": PROMPTS[t.prompt], "fix_space": t.fix_space, "use_underscore": t.use_underscore,
            "avg_synonyms": t.avg_synonyms, "vocabulary": str(vocab.path),
            "sentences_per_class": [len(s) for s in plan.sentences]})
    if DESCRIPTIONS in stale_text:
        finish(DESCRIPTIONS, sentence_classifier(inputs.descriptions, bundle, progress=True), "descriptions", "clip",
               False, {
            "source": inputs.descriptions_source, "sentences_per_class": [len(s) for s in inputs.descriptions],
            "reduction": "mean of the CLIP text embeddings of each class's descriptions"})
    encoded: dict[str, ExemplarEmbeddings] = {}
    if stale_vision:
        specs = [settings.views if n == AVERAGE else plan.agg_view for n in stale_vision]
        encoded = dict(zip(stale_vision, encode_view_sets(bundle, exemplars.records, specs,
                                                          batch_size=settings.clip.batch_size)))
        for name, emb in encoded.items():
            has = _vision_rows(emb, len(vocab))
            view = settings.views if name == AVERAGE else plan.agg_view
            details = {**_views_settings(view), "exemplars_per_class": [len(r) for r in exemplars.records],
                       "classes_without_exemplars": [n for n, h in zip(names, has) if not h],
                       "skipped_images": [{**s, "class": names[s["class"]]} for s in emb.skipped]
                       + [{**s, "exemplar": None} for s in exemplars.skipped]}
            if name == AVERAGE:  # classes without a readable exemplar: 0/0 means, zeroed
                rows = np.where(has[:, None], np.nan_to_num(average_classifier(emb)), 0).astype(np.float32)
                finish(name, rows, "vision-average", "clip", False, {
                    **details, "combine": "mean of the raw CLIP image embeddings of K x num_views views"})
            else:
                a = settings.aggregator
                rows = aggregated_classifier(emb, aggregator, view.num_views, bundle.device)
                finish(name, np.where(has[:, None], rows, 0).astype(np.float16), "vision-aggregated", "aggregator",
                       False, {**details, "aggregator": a.path, "num_layers": a.num_layers,
                               "combine": "visual aggregator over the raw CLIP image embeddings of K x num_views views"})
    text_stage = plan.stages[plan.text_source]
    for fused, vision in FUSIONS.items():
        if fused in plan.stale(fused):
            v = plan.stages[vision].array
            finish(fused, _fuse(text_stage.array, v), "multi-modal", "clip" if fused == MM_AVERAGE else "mixed", True, {"sources": {"text": text_stage.path.name, "vision": plan.stages[vision].path.name},
                          "normalisation": "l2(l2(text) + l2(vision)); l2(text) where the class has no exemplars",
                          "text_only_classes": [n for n, h in zip(names, v.any(axis=1)) if not h]})
    computed = [s.name for s in plan.stages.values() if not s.reused]
    prepare_out_dir(out)
    for stage in plan.stages.values():
        if not stage.reused:
            save_classifier(stage.path, stage.array, stage.sidecar)
    without = _without(plan, names, exemplars)
    if any(exemplars.records):
        _write_if_changed(out / "exemplars.json", dumps_json(exemplars.records, indent=True))
    _write_if_changed(out / "vocabulary.json", dumps_json(_vocabulary_doc(inputs, settings, plan, without), indent=True))
    handoff = next(n for n in HANDOFF_PREFERENCE if n in plan.stages)
    main = plan.stages[handoff]
    result = BuildResult(out, {n: s.path for n, s in plan.stages.items()}, computed,
                         [s.name for s in plan.stages.values() if s.reused], without, handoff,
                         detic_config_lines(main.path, len(vocab), main.array.shape[1]))
    for kind in settings.export:
        (out / "export").mkdir(exist_ok=True)
        stage = plan.stages[kind]
        result.exports[kind] = out / "export" / f"{kind}.npy"
        export_prompt_embeddings(stage.array, stage.sidecar, result.exports[kind], str(stage.path), command)
    if settings.judge and AVERAGE in plan.stages:
        result.judged = _judge(plan, inputs, settings, encoded, aggregator, out, command)
    if settings.report:
        skipped = plan.stages[AVERAGE].sidecar.details["skipped_images"] if AVERAGE in plan.stages else exemplars.skipped
        shown = {"vocabulary": f"{vocab.path} ({vocab.format})", **clip_description(settings.clip),
                 "views": _views_settings(settings.views), "aggregator": settings.aggregator and settings.aggregator.path,
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
    kinds = [JudgedKind(n, s.array, vision={AVERAGE: "average", AGGREGATED: "aggregated"}.get(FUSIONS.get(n, n)),
                        text=text if n in FUSIONS else None, space="aggregator" if n == AGGREGATED else "clip")
             for n, s in plan.stages.items()]
    return judging.judge_build(out, inputs.vocab.names, inputs.exemplars.records, {n: s.array for n, s in plan.stages.items()},
                               kinds, encoded, average=AVERAGE, aggregated=AGGREGATED, aggregator=aggregator,
                               num_views=settings.views.num_views, device=resolve_device(settings.clip.device),
                               command=command)


def _without(plan: _Plan, names: list[str], exemplars: ExemplarSet) -> list[str]:
    """Classes without a vision row: no exemplars, or none readable."""
    if AVERAGE in plan.stages:
        return [n for n, has in zip(names, plan.stages[AVERAGE].array.any(axis=1)) if not has]
    return [names[i] for i in exemplars.classes_without()]


def _vocabulary_doc(inputs: BuildInputs, settings: BuildSettings, plan: _Plan, without: list[str]) -> dict[str, Any]:
    """vocabulary.json: the class order and, per class, what went into each row."""
    vocab, exemplars = inputs.vocab, inputs.exemplars
    text_source = plan.text_source
    skipped: dict[str, list[dict[str, Any]]] = {}
    for name in (AVERAGE, AGGREGATED):
        if name in plan.stages:
            for item in plan.stages[name].sidecar.details.get("skipped_images", []):
                skipped.setdefault(item["class"], []).append({"path": item["path"], "reason": item["reason"]})
    classes = []
    for i, cls in enumerate(vocab.classes):
        has_vision = cls.name not in without and AVERAGE in plan.stages
        classes.append({
            "index": i, "name": cls.name, "synonyms": list(cls.synonyms), "category_id": cls.category_id,
            "defined_at": cls.where,
            "text": {"sentences": plan.sentences[i]},
            "descriptions": {"sentences": inputs.descriptions[i]} if inputs.descriptions is not None else None,
            "exemplars": [{"image": r["file_name"], "bbox": r.get("bbox"), "source": r.get("source"),
                           "area": r.get("area")} for r in exemplars.records[i]
                          if r["file_name"] not in {s["path"] for s in skipped.get(cls.name, [])}],
            "exemplar_candidates": exemplars.candidates[i],
            "skipped_images": skipped.get(cls.name, []),
            "multi_modal": (f"{text_source} + vision" if has_vision else f"{text_source} only (no exemplars)")
            if AVERAGE in plan.stages else None,
        })
    return {
        "schema_version": SCHEMA_VERSION,
        "vocabulary": {"path": str(vocab.path), "format": vocab.format, "classes": len(vocab)},
        "files": {name: stage.path.name for name, stage in plan.stages.items()},
        "classes_without_exemplars": without,
        "unmatched_exemplar_folders": exemplars.unmatched,
        "ignored_files": exemplars.ignored_files,
        "settings": {"clip": {"model": settings.clip.model, "pretrained": settings.clip.pretrained},
                     "text": asdict(settings.text),
                     "views": _views_settings(settings.views),
                     "aggregator": asdict(settings.aggregator) if settings.aggregator else None,
                     "descriptions": inputs.descriptions_source},
        "classes": classes,
    }
