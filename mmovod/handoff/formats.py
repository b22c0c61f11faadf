"""The detector formats a classifier can be handed off in (one table, `FORMATS`), and `export_classifier`.

A row says what a format is: the suffix of its file, whether the detector compares the rows with
CLIP embeddings (`clip_space`: then rows from the visual aggregator, space `aggregator` or `mixed`,
mean nothing to it), the width its released models take (`width_note` says when rows differ), and
the module function that writes it. Adding a format is one module with its `write_*` function and
one row here.

Before anything is written, an export is refused (InputError, one line naming the file) for rows in
another space than the format needs (saying which kinds would work), rows of another width than the
`embed_dim` the caller states, rows holding NaN/inf or all zeros, and a classifier without class
names. Every file of a format is written together (`mmovod.io.atomic.write_files_together`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from mmovod.classifiers.row_problems import zero_rows_problem
from mmovod.classifiers.fusion import check_finite_nonzero
from mmovod.classifiers.kinds import KINDS, built
from mmovod.classifiers.sidecar import ClassifierSidecar, check_classifier_path, classifier_files
from mmovod.handoff.detic import write_detic
from mmovod.handoff.output import Handoff
from mmovod.handoff.source import read_source
from mmovod.handoff.ultralytics import write_ultralytics
from mmovod.handoff.yolo_world import write_yolo_world
from mmovod.io.errors import InputError

AGGREGATOR_TEXT_COSINE = -0.025
"""Mean cosine between the rows of the authors' aggregated and text LVIS classifiers (measured)."""


@dataclass(frozen=True)
class HandoffFormat:
    """One row of the table (see the module docstring)."""

    name: str
    detector: str
    suffix: str
    clip_space: bool
    detector_dim: int | None
    write: Callable[[np.ndarray, ClassifierSidecar, Path, str, str | None], Handoff]


FORMATS: dict[str, HandoffFormat] = {f.name: f for f in (
    HandoffFormat("detic", "Detic", ".npy", clip_space=False, detector_dim=512, write=write_detic),
    HandoffFormat("yolo-world", "YOLO-World", ".npy", clip_space=True, detector_dim=512, write=write_yolo_world),
    HandoffFormat("ultralytics", "Ultralytics YOLO-World", ".pt", clip_space=True, detector_dim=512,
                  write=write_ultralytics),
)}


def check_space(kind: str, space: str | None, fmt: HandoffFormat, where: str) -> None:
    """InputError unless rows of this kind and space mean something to the format's detector."""
    if not fmt.clip_space:
        return
    in_clip = ", ".join(n for n in built() if KINDS[n].space == "clip")
    instead = (f"export rows in CLIP's space instead: {in_clip}, or the aggregated kinds of an aggregator trained "
               "for CLIP's space (train_visual_aggregator)")
    if space is None:
        raise InputError(f"{where}: no sidecar says which space its rows are in, and {fmt.detector} compares them "
                         "with CLIP embeddings: pass --space clip for CLIP text or image rows, or --space aggregator "
                         "for rows from the visual aggregator (the authors' *_agg_* files), which it cannot use")
    if space != "clip":
        raise InputError(
            f"{where}: a {kind} classifier has rows from the visual aggregator, whose outputs are not in CLIP's space "
            f"(its rows have a mean cosine of {AGGREGATOR_TEXT_COSINE} with CLIP text rows on the authors' files): "
            f"{fmt.detector} compares them with CLIP embeddings; {instead} (--format detic loads it as it is)")


def width_note(fmt: str, width: int) -> str | None:
    """What to know when rows of `width` go to format `fmt`, whose released detectors take another width; else None."""
    form = FORMATS[fmt]
    if form.detector_dim is None or width == form.detector_dim:
        return None
    return (f"the rows are {width}-d; the released {form.detector} models take {form.detector_dim}-d (CLIP ViT-B/32): "
            f"this file fits only a detector built for {width}-d embeddings (--embed-dim "
            f"{form.detector_dim} refuses such rows)")


def export_rows(array: np.ndarray, sidecar: ClassifierSidecar, fmt: str, out: str | os.PathLike, *, source: str,
                space: str | None = None, embed_dim: int | None = None, command: str | None = None) -> Handoff:
    """Check `array` `(C, D)` (described by `sidecar`, rows in `space`) for format `fmt` and write it to `out`.

    Without `embed_dim`, rows of another width than the format's released detectors take are written with a note."""
    form = FORMATS[fmt]
    if Path(out).suffix != form.suffix:
        raise InputError(f"{out}: a {fmt} export is a {form.suffix} file")
    check_space(sidecar.kind, space, form, source)
    if embed_dim is not None and array.shape[1] != embed_dim:
        raise InputError(f"{source}: rows are {array.shape[1]}-d (CLIP {sidecar.clip_model or 'unknown'}), the "
                         f"detector takes {embed_dim}-d embeddings (--embed-dim): export a classifier made with the "
                         "detector's CLIP")
    zero = np.flatnonzero(np.isfinite(array).all(axis=1) & ~array.any(axis=1)).tolist()
    if zero:  # named with their classes and the fix, as check_classifier names them
        raise InputError(f"{source}: {zero_rows_problem(zero, sidecar.class_names, sidecar)}; a detector never "
                         "predicts a class whose row is zeros")
    check_finite_nonzero(array, source)
    if not sidecar.class_names:
        raise InputError(f"{source}: no class names (its sidecar lists none): pass --class-names FILE (one name a "
                         "line, or the LVIS/COCO annotation file whose categories the rows are)")
    handoff = form.write(array, sidecar, Path(out), source, command)
    note = width_note(fmt, array.shape[1]) if embed_dim is None else None
    handoff.notes += [note] if note else []
    return handoff


def export_classifier(path: str | os.PathLike, fmt: str, out: str | os.PathLike, *,
                      class_names: str | os.PathLike | None = None, clip_model: str | None = None,
                      pretrained: str | None = None, space: str | None = None, embed_dim: int | None = None,
                      command: str | None = None) -> Handoff:
    """Hand the classifier at `path` to a detector: write it to `out` in format `fmt` (a key of FORMATS).

    `class_names`, `clip_model`/`pretrained` and `space` describe a classifier without sidecar
    (`mmovod.handoff.source`); `embed_dim`, when given, is the width the detector takes."""
    check_classifier_path(out, [*classifier_files(path), class_names])
    source = read_source(path, class_names=class_names, clip_model=clip_model, pretrained=pretrained, space=space)
    return export_rows(source.array, source.sidecar, fmt, out, source=str(path), space=source.space,
                       embed_dim=embed_dim, command=command)
