"""vocabulary.json, the document a build writes beside its classifiers: the class order and, per
class, what went into each row (sentences, exemplars used and skipped, text-only multi-modal rows),
with the build's settings."""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

from mmovod.vocabulary.exemplar_folders import ExemplarSet
from mmovod.vocabulary.plan import Plan
from mmovod.vocabulary.settings import BuildInputs, BuildSettings

SCHEMA_VERSION = 3


def classes_without_vision(plan: Plan, names: list[str], exemplars: ExemplarSet) -> list[str]:
    """Classes without a vision row: no exemplars, or none readable."""
    vision = plan.of("vision")
    if vision:
        return [n for n, has in zip(names, plan.stages[vision[0]].array.any(axis=1)) if not has]
    return [names[i] for i in exemplars.classes_without()]


def vocabulary_doc(inputs: BuildInputs, settings: BuildSettings, plan: Plan, without: list[str],
                   handoff: dict[str, Any]) -> dict[str, Any]:
    """vocabulary.json: the class order and, per class, what went into each row; `handoff`: the kind handed
    to the detector, why, and the leave-one-out scores it was chosen by (`Recommendation.as_json`)."""
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
            "multi_modal": (f"{text_source} + vision" if has_vision else f"{text_source} only (no exemplars): its vision direction estimated from the text and the "
                                                     "classes with exemplars")
            if vision else None,
        })
    return {
        "schema_version": SCHEMA_VERSION,
        "vocabulary": {"path": str(vocab.path), "format": vocab.format, "classes": len(vocab)},
        "files": {name: stage.path.name for name, stage in plan.stages.items()},
        "spaces": {name: stage.sidecar.space for name, stage in plan.stages.items()},
        "handoff": handoff,
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
