"""The two text-classifier steps: class-name prompts (Detic's dump_clip_features) and LLM descriptions.

Each builds the sentences of every category of an LVIS-format annotation file (ascending id) and
writes their per-class mean CLIP text embedding with a provenance sidecar (`write_text_classifier`).
"""
from __future__ import annotations

import argparse
import logging
import os

import numpy as np

from mmovod.io.arrays import check_classifier_path
from mmovod.classifiers.text_inputs import PROMPTS, class_prompts, descriptions_per_class, load_categories, load_descriptions
from mmovod.clip.text_encoding import write_text_classifier

log = logging.getLogger(__name__)


def build_prompt_classifier(
    ann_path: str | os.PathLike,
    out_path: str | os.PathLike,
    clip_args: argparse.Namespace,
    *,
    prompt: str,
    fix_space: bool = False,
    use_underscore: bool = False,
    avg_synonyms: bool = False,
    use_wn_name: bool = False,
) -> np.ndarray:
    """Embed the `PROMPTS[prompt]` sentence of each class name (or of each synonym, averaged, with
    `avg_synonyms`) and write the float32 (C, D) classifier; `clip_args` holds the shared CLIP flags."""
    check_classifier_path(out_path)
    cats = load_categories(ann_path)
    if use_wn_name and not avg_synonyms:
        log.warning("--use_wn_name only changes the output together with --avg_synonyms (as in Detic)")
    groups = class_prompts(cats, ann_path, prompt, fix_space, use_underscore, avg_synonyms, use_wn_name)
    return write_text_classifier(groups, clip_args, out_path, {
        "source": {"ann": str(ann_path)},
        "prompt": PROMPTS[prompt],
        "fix_space": fix_space,
        "use_underscore": use_underscore,
        "avg_synonyms": avg_synonyms,
        "use_wn_name": use_wn_name and avg_synonyms,
        "category_ids": [c["id"] for c in cats],
    })


def build_description_classifier(
    descriptions_path: str | os.PathLike,
    ann_path: str | os.PathLike,
    out_path: str | os.PathLike,
    clip_args: argparse.Namespace,
) -> np.ndarray:
    """Embed each class's descriptions and write their float32 (C, D) mean per class; `clip_args`
    holds the shared CLIP flags."""
    check_classifier_path(out_path)
    cats = load_categories(ann_path)
    sentences = descriptions_per_class(load_descriptions(descriptions_path), cats, descriptions_path)
    return write_text_classifier(sentences, clip_args, out_path, {
        "source": {"descriptions": str(descriptions_path), "ann": str(ann_path)},
        "reduction": "mean of the CLIP text embeddings of each class's descriptions",
        "sentences_per_class": [len(s) for s in sentences],
        "category_ids": [c["id"] for c in cats],
    })
