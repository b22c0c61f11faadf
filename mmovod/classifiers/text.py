"""Text classifiers: per class, the mean CLIP text embedding of its sentences (class-name prompts or descriptions).

In memory: `text_classifier(class_names, clip)` (Detic's prompt of each name, optionally averaged over
synonyms) and `sentence_classifier(sentences_per_class, clip)` (any sentences, e.g. LLM descriptions).
On disk: `write_prompt_classifier` (Detic's dump_clip_features) and `write_description_classifier`
take the categories of an LVIS-format file in ascending id, the row order of the file they write.
Every classifier is float32 `(C, D)`, NOT normalised (the detector normalises).
"""
from __future__ import annotations

import logging
import os
from typing import Any, Sequence

import numpy as np
from tqdm import tqdm

from mmovod.classifiers.sidecar import check_classifier_path, make_sidecar, save_classifier
from mmovod.classifiers.kinds import KINDS
from mmovod.classifiers.text_inputs import (PromptSpec, class_prompts, descriptions_per_class, load_categories,
                                            load_descriptions, prompt_sentences)
from mmovod.clip.factory import ClipBundle
from mmovod.clip.specs import ClipSpec, as_bundle
from mmovod.clip.text_encoding import encode_class_means
from mmovod.io.errors import InputError

log = logging.getLogger(__name__)


def sentence_classifier(sentences_per_class: Sequence[Sequence[str]], clip: ClipSpec | ClipBundle,
                        batch_size: int | None = None, progress: bool = False) -> np.ndarray:
    """float32 `(C, D)`: per class, the mean CLIP text embedding of its sentences (each class needs one)."""
    empty = [i for i, group in enumerate(sentences_per_class) if not group]
    if empty:
        raise InputError(f"class {empty[0]} has no sentence to embed")
    bundle, spec_batch = as_bundle(clip, tower="text")
    total = sum(len(s) for s in sentences_per_class)
    log.info("embedding %d sentences of %d classes with %s on %s",
             total, len(sentences_per_class), bundle.model_name, bundle.device)
    with tqdm(total=total, unit="sentence", desc="encode", disable=not progress) as bar:
        return encode_class_means(bundle, sentences_per_class, batch_size or spec_batch, bar.update)


def text_classifier(class_names: Sequence[str], clip: ClipSpec | ClipBundle, *, prompt: str = "a",
                    synonyms: Sequence[Sequence[str]] | None = None, batch_size: int | None = None) -> np.ndarray:
    """float32 `(C, D)` class-name classifier, NOT normalised: the CLIP text embedding of each class's
    prompt (`PROMPTS[prompt]`, Detic's `a <name>` by default), averaged over `synonyms` when given."""
    return sentence_classifier(prompt_sentences(class_names, prompt, synonyms), clip, batch_size)


def _write(path: str | os.PathLike, sentences: list[list[str]], clip: ClipSpec, kind: str,
           cats: list[dict[str, Any]], command: str | None, details: dict[str, Any]) -> np.ndarray:
    bundle = clip.load(tower="text")
    features = sentence_classifier(sentences, bundle, clip.batch_size, progress=True)
    save_classifier(path, features, make_sidecar(
        features, kind, bundle.describe(), class_names=[c["name"] for c in cats],
        category_ids=[c["id"] for c in cats], command=command, details=details))
    log.info("wrote %s: %s %s", path, features.shape, features.dtype)
    return features


def write_prompt_classifier(ann_path: str | os.PathLike, out_path: str | os.PathLike, clip: ClipSpec,
                            prompts: PromptSpec = PromptSpec(), *, command: str | None = None) -> np.ndarray:
    """Embed the prompts (`prompts`, Detic's recipe) of each class of `ann_path` and write the float32
    (C, D) classifier with its sidecar."""
    check_classifier_path(out_path, [ann_path])
    cats = load_categories(ann_path)
    if prompts.use_wn_name and not prompts.avg_synonyms:
        log.warning("--use_wn_name only changes the output together with --avg_synonyms (as in Detic)")
    groups = class_prompts(cats, ann_path, prompts)
    return _write(out_path, groups, clip, "text", cats, command, {
        "source": {"ann": str(ann_path)}, **prompts.details(), "sentences_per_class": [len(g) for g in groups]})


def write_description_classifier(
    descriptions_path: str | os.PathLike,
    ann_path: str | os.PathLike,
    out_path: str | os.PathLike,
    clip: ClipSpec,
    *,
    command: str | None = None,
) -> np.ndarray:
    """Embed each class's descriptions and write their float32 (C, D) mean per class with its sidecar."""
    check_classifier_path(out_path, [descriptions_path, ann_path])
    cats = load_categories(ann_path)
    sentences = descriptions_per_class(load_descriptions(descriptions_path), cats, descriptions_path)
    return _write(out_path, sentences, clip, "descriptions", cats, command, {
        "source": {"descriptions": str(descriptions_path), "ann": str(ann_path)},
        "combine": KINDS["descriptions"].computed,
        "sentences_per_class": [len(s) for s in sentences],
    })
