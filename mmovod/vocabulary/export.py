"""Hand-off to detectors: the Detic config lines for a classifier, and prompt-embedding exports.

Detic (`ZeroShotClassifier`) reads the `(C, D)` `.npy` as written here: `np.load`, float32,
transposed to `(D, C)`, a zero background column appended, every column L2-normalised (the
default `MODEL.ROI_BOX_HEAD.NORM_WEIGHT`). The number of rows must equal
`MODEL.ROI_HEADS.NUM_CLASSES` (or the test-time `MODEL.TEST_NUM_CLASSES` entry) and D must equal
`MODEL.ROI_BOX_HEAD.ZEROSHOT_WEIGHT_DIM` (512 for the released models).

Prompt-embedding detectors (YOLO-World's `SimpleYOLOWorldDetector` with `embedding_path`, and other
offline-vocabulary detectors) take an L2-normalised float32 `(C, D)` array of CLIP text or image
embeddings and compare it with image features in CLIP's space. The visual aggregator's outputs are
not in that space (on the authors' LVIS files their rows have a mean cosine of -0.025 with the CLIP
text rows), so aggregated classifiers (space `aggregator`), and fusions that contain one (space
`mixed`), are refused.
"""
from __future__ import annotations

import json
import os
import shlex

import numpy as np

from mmovod.classifiers.kinds import exportable
from mmovod.classifiers.fusion import check_finite_nonzero, l2_normalise_rows
from mmovod.classifiers.sidecar import ClassifierSidecar, make_sidecar, save_classifier
from mmovod.io.errors import InputError

AGGREGATOR_TEXT_COSINE = -0.025
"""Mean cosine between the rows of the authors' aggregated and text LVIS classifiers (measured)."""


def detic_config_lines(path: str | os.PathLike, num_classes: int, embed_dim: int) -> list[str]:
    """Detic command-line config options using `path`: as the model's classifier, or swapped in at test time.

    Quoted for a POSIX shell, so a path with spaces or quotes pastes as one argument."""
    classifiers = shlex.quote(f"({json.dumps(str(path))},)")
    return [
        f"MODEL.ROI_BOX_HEAD.ZEROSHOT_WEIGHT_PATH {shlex.quote(str(path))} MODEL.ROI_HEADS.NUM_CLASSES {num_classes} "
        f"MODEL.ROI_BOX_HEAD.ZEROSHOT_WEIGHT_DIM {embed_dim}",
        f"MODEL.RESET_CLS_TESTS True MODEL.TEST_CLASSIFIERS {classifiers} MODEL.TEST_NUM_CLASSES '({num_classes},)'",
    ]


def check_exportable(kind: str, space: str, where: str) -> None:
    """InputError unless a classifier of this kind and space has rows in CLIP's embedding space."""
    if space != "clip":
        raise InputError(
            f"{where}: a {kind} classifier has rows from the visual aggregator, whose outputs are not in CLIP's space "
            f"(its rows have a mean cosine of {AGGREGATOR_TEXT_COSINE} with CLIP text rows on the authors' "
            f"files): a prompt-embedding detector cannot use it; export a {', '.join(exportable()[:-1])} or "
            f"{exportable()[-1]} classifier "
            "instead (Detic can load it as it is)")


def prompt_embeddings(array: np.ndarray) -> np.ndarray:
    """The prompt-embedding form of a classifier: rows L2-normalised, float32 `(C, D)`."""
    return l2_normalise_rows(array).astype(np.float32)


def export_prompt_embeddings(array: np.ndarray, sidecar: ClassifierSidecar, out_path: str | os.PathLike,
                             source: str, command: str | None = None) -> np.ndarray:
    """Write `prompt_embeddings(array)` to `out_path` with a sidecar (normalized, the source named)."""
    check_exportable(sidecar.kind, sidecar.space, source)
    check_finite_nonzero(array, source)
    out = prompt_embeddings(array)
    side = make_sidecar(out, sidecar.kind, {"clip_model": sidecar.clip_model, "pretrained": sidecar.pretrained,
                                             "embed_dim": sidecar.embed_dim},
                        normalized=True, class_names=sidecar.class_names, category_ids=sidecar.category_ids,
                        command=command, details={"exported_from": source, "form": "prompt embeddings (L2-normalised)"})
    save_classifier(out_path, out, side)
    return out
