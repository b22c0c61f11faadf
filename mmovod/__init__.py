"""mmovod: data preparation and multi-modal CLIP classifiers for open-vocabulary detection (MM-OVOD).

The public entry points are importable from here (`from mmovod import text_classifier, ClipSpec`);
they load lazily, so the data-preparation steps do not pay for importing torch.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # settings and models
    "ClipSpec": "mmovod.clip.specs",
    "ViewSpec": "mmovod.clip.specs",
    "ClipBundle": "mmovod.clip.factory",
    "load_clip": "mmovod.clip.factory",
    "VisualAggregator": "mmovod.aggregator.model",
    "InputError": "mmovod.io.errors",
    "BadImageError": "mmovod.readers.exemplar_records",
    # text classifiers
    "text_classifier": "mmovod.classifiers.text",
    "sentence_classifier": "mmovod.classifiers.text",
    "write_prompt_classifier": "mmovod.classifiers.text",
    "PromptSpec": "mmovod.classifiers.text_inputs",
    "write_description_classifier": "mmovod.classifiers.text",
    # image-exemplar classifiers
    "load_exemplar_list": "mmovod.readers.exemplar_list",
    "exemplar_classifier": "mmovod.classifiers.vision",
    "encode_exemplar_views": "mmovod.classifiers.vision",
    "average_classifier": "mmovod.classifiers.vision",
    "aggregated_classifier": "mmovod.classifiers.vision",
    "write_average_classifier": "mmovod.classifiers.vision",
    "write_aggregated_classifier": "mmovod.classifiers.vision",
    "AVERAGE_VIEWS": "mmovod.classifiers.recipes",
    "AGGREGATOR_VIEWS": "mmovod.classifiers.recipes",
    # the one image-encoding pipeline: item records -> (N, V, D) embeddings, valid mask, skipped images
    "encode_items": "mmovod.clip.image_encoding",
    "encode_exemplars": "mmovod.clip.image_encoding",
    # the classifier kinds, fusion and the classifier-file contract
    "KINDS": "mmovod.classifiers.kinds",
    "ClassifierKind": "mmovod.classifiers.kinds",
    "register_kind": "mmovod.classifiers.kinds",
    "unregister_kind": "mmovod.classifiers.kinds",
    "fuse_classifiers": "mmovod.classifiers.fusion",
    "fuse_classifier_files": "mmovod.classifiers.fusion",
    "ClassifierSidecar": "mmovod.classifiers.sidecar",
    "make_sidecar": "mmovod.classifiers.sidecar",
    "save_classifier": "mmovod.classifiers.sidecar",
    "read_sidecar": "mmovod.classifiers.sidecar",
    "load_classifier": "mmovod.classifiers.sidecar",
    "check_classifier": "mmovod.classifiers.check",
    # your own vocabulary
    "read_vocabulary": "mmovod.readers.vocabulary_file",
    "collect_exemplars": "mmovod.vocabulary.exemplar_folders",
    "build_classifiers": "mmovod.vocabulary.build",
    "BuildInputs": "mmovod.vocabulary.settings",
    "BuildSettings": "mmovod.vocabulary.settings",
    # detector-free evaluation of classifiers
    "EvalSettings": "mmovod.evaluation.evaluate",
    "evaluate_classifiers": "mmovod.evaluation.evaluate",
    "crop_metrics": "mmovod.evaluation.metrics",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mmovod' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
