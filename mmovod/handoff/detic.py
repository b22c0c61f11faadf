"""Detic: the classifier `.npy` as its `ZeroShotClassifier` reads it, the config options that load it
and the class-name list.

Detic (`detic/modeling/roi_heads/zero_shot_classifier.py`) reads `np.load(path)` as float32 `(C, D)`,
transposes it to `(D, C)`, appends a zero background column and L2-normalises every column (the
default `MODEL.ROI_BOX_HEAD.NORM_WEIGHT`). The number of rows must equal `MODEL.ROI_HEADS.NUM_CLASSES`
(or the test-time `MODEL.TEST_NUM_CLASSES` entry) and D `MODEL.ROI_BOX_HEAD.ZEROSHOT_WEIGHT_DIM` (512
for the released models). `ZEROSHOT_WEIGHT_PATH` is read only when `MODEL.ROI_BOX_HEAD.USE_ZEROSHOT_CLS`
is on (off in Detic's defaults), when the model is built: `zs_weight` is a buffer saved in Detic's
checkpoints, so `MODEL.WEIGHTS` holding one of the same shape replaces it. The test-time swap
(`train_net.py`'s `reset_cls_test`, after the weights load) takes one classifier per `DATASETS.TEST`
entry, so its line names the dataset (`YOUR_DATASET`, to replace). Rows of any space load: MM-OVOD's
aggregated classifiers were made for Detic, but rows not in CLIP's space only mean something to a
detector trained with them, so their test-time-swap line is left out.

Writes `X.npy` (float32, the rows as they are), its sidecar, `X.classes.txt` (one class name a line,
in row order) and `X.detic.txt` (the config options).
"""
from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import numpy as np

from mmovod.classifiers.sidecar import ClassifierSidecar
from mmovod.handoff.output import Handoff, beside, class_list_bytes, exported_sidecar
from mmovod.io.arrays import npy_bytes
from mmovod.io.atomic import write_files_together

DATASET_PLACEHOLDER = '("YOUR_DATASET",)'
"""The test-time line's `DATASETS.TEST`: the user puts the name of the dataset registered with the classes."""


def detic_config_lines(path: str | os.PathLike, num_classes: int, embed_dim: int) -> list[str]:
    """Detic command-line config options using `path`: as the model's classifier, or swapped in at test time
    for the one test dataset `YOUR_DATASET` (a placeholder for the dataset registered with these classes).

    Quoted for a POSIX shell, so a path with spaces or quotes pastes as one argument."""
    classifiers = shlex.quote(f"({json.dumps(str(path))},)")
    return [
        f"MODEL.ROI_BOX_HEAD.USE_ZEROSHOT_CLS True MODEL.ROI_BOX_HEAD.ZEROSHOT_WEIGHT_PATH {shlex.quote(str(path))} "
        f"MODEL.ROI_HEADS.NUM_CLASSES {num_classes} MODEL.ROI_BOX_HEAD.ZEROSHOT_WEIGHT_DIM {embed_dim}",
        f"DATASETS.TEST {shlex.quote(DATASET_PLACEHOLDER)} MODEL.RESET_CLS_TESTS True MODEL.TEST_CLASSIFIERS "
        f"{classifiers} MODEL.TEST_NUM_CLASSES '({num_classes},)'",
    ]


def write_detic(array: np.ndarray, sidecar: ClassifierSidecar, out: Path, source: str,
                command: str | None = None) -> Handoff:
    """Write the Detic hand-off of checked rows `array` `(C, D)` to `out` (see the module docstring)."""
    rows = array.astype(np.float32)
    lines = detic_config_lines(out, *rows.shape)
    train = ("# Detic config options (train_net.py; demo.py sets its own classifier): train with the first line "
             "(MODEL.WEIGHTS holding a classifier of the same shape replaces it)")
    config = (f"{train}; the second swaps it in for evaluating or running a trained model, for the test dataset "
              f"registered with the classes of {beside(out, '.classes.txt').name} in that order (replace "
              "YOUR_DATASET with its name)\n")
    if sidecar.space != "clip":
        lines = lines[:1]
        config = (f"{train}; the rows are not in CLIP's space, so they cannot be swapped into a detector trained on "
                  "text rows\n")
    files = {out: npy_bytes(rows),
             **exported_sidecar(rows, sidecar, out, normalized=sidecar.normalized, source=source, command=command,
                                form="Detic ZeroShotClassifier weights (C, D) float32"),
             beside(out, ".classes.txt"): class_list_bytes(sidecar.class_names),
             beside(out, ".detic.txt"): (config + "".join(f"{line}\n" for line in lines)).encode()}
    write_files_together(files)
    return Handoff("detic", list(files), lines)
