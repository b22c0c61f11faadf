"""Check a classifier file before a detector loads it: one line per problem.

Detic loads `np.load(path)` as float32 `(C, D)`, transposes it and L2-normalises each class column;
nothing checks that the rows came from the CLIP the detector was trained with, that D matches, or
that no row is empty. `check_classifier` reports, each as one line naming the file:
- an unreadable file, an array that is not 2-D, has no rows or rows of no numbers, a non-float dtype;
- rows holding NaN or inf, all-zero rows, duplicate rows (cosine > 1 - 1e-6);
- an embedding size other than the CLIP model's (`clip_model`; read from the model's config,
  no weights loaded) or than the sidecar's `embed_dim`;
- a sidecar that disagrees with the array (shape, dtype), with `clip_model`, with its kind's row
  of `mmovod.classifiers.kinds` (space), with itself (class names that repeat, compared as the vocabulary reader compares
  them: case, Unicode forms and '_' folded) or with a vocabulary's
  class order, or that says `normalized` while the rows are not unit length.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from mmovod.classifiers.kinds import KINDS
from mmovod.classifiers.row_problems import SHOWN, named_rows, zero_rows_problem
from mmovod.classifiers.sidecar import ClassifierSidecar, empty_classifier, read_sidecar
from mmovod.clip.factory import clip_embed_dim
from mmovod.clip.identity import architecture
from mmovod.io.arrays import load_matrix
from mmovod.io.errors import InputError
from mmovod.readers.vocabulary_file import normalise_name

DUPLICATE_COSINE = 1.0 - 1e-6
NORM_TOLERANCE = 1e-3


def duplicate_pairs(array: np.ndarray, usable: np.ndarray, chunk: int = 1024) -> list[tuple[int, int]]:
    """Pairs (i < j) of usable rows whose cosine exceeds DUPLICATE_COSINE."""
    index = np.flatnonzero(usable)
    unit = array[index].astype(np.float64)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    pairs = []
    for start in range(0, len(index), chunk):
        cos = unit[start:start + chunk] @ unit.T
        for a, b in zip(*np.nonzero(cos > DUPLICATE_COSINE)):
            if start + a < b:
                pairs.append((int(index[start + a]), int(index[b])))
    return pairs


def _array_problems(array: np.ndarray, names: list[str] | None, sidecar: ClassifierSidecar | None) -> list[str]:
    problems = []
    if not np.issubdtype(array.dtype, np.floating):
        return [f"dtype {array.dtype} is not a float type (Detic loads float32)"]
    finite = np.isfinite(array).all(axis=1)
    if not finite.all():
        problems.append(f"rows {named_rows(np.flatnonzero(~finite).tolist(), names)} hold NaN or inf")
    zero = finite & ~array.any(axis=1)
    if zero.any():
        problems.append(zero_rows_problem(np.flatnonzero(zero).tolist(), names, sidecar))
    pairs = duplicate_pairs(array, finite & ~zero)
    if pairs:
        shown = ", ".join(f"{a} and {b}" + (f" ({names[a]}, {names[b]})" if names else "") for a, b in pairs[:SHOWN])
        problems.append(f"{len(pairs)} pairs of identical rows (cosine > 1 - 1e-6): {shown}")
    return problems


def _repeat(first: str, row: int, again: str, again_row: int) -> str:
    if first == again:
        return f"{first!r} (rows {row} and {again_row})"
    return f"{first!r} and {again!r} (rows {row} and {again_row}: one name once case and Unicode forms are folded)"


def _sidecar_problems(array: np.ndarray, sidecar: ClassifierSidecar, clip_model: str | None,
                      class_names: Sequence[str] | None) -> list[str]:
    problems = []
    if tuple(sidecar.shape) != tuple(array.shape):
        problems.append(f"sidecar says shape {list(sidecar.shape)}, the array is {list(array.shape)}")
    if sidecar.dtype != str(array.dtype):
        problems.append(f"sidecar says dtype {sidecar.dtype}, the array is {array.dtype}")
    kind = KINDS.get(sidecar.kind)
    if kind is not None and kind.built and sidecar.space not in kind.spaces:
        problems.append(f"sidecar says {sidecar.space} space, but a {sidecar.kind} classifier's rows are in "
                        f"{' or '.join(kind.spaces)} space")
    if sidecar.embed_dim is not None and sidecar.embed_dim != array.shape[1]:
        problems.append(f"sidecar says CLIP embed_dim {sidecar.embed_dim}, rows are {array.shape[1]}-d")
    if clip_model is not None and sidecar.clip_model is not None \
            and architecture(sidecar.clip_model) != architecture(clip_model):
        problems.append(f"made with CLIP {sidecar.clip_model}, not {clip_model}: its rows mean nothing to a "
                        f"detector trained with {clip_model}")
    names = sidecar.class_names
    if names:
        seen: dict[str, int] = {}  # by the vocabulary reader's form of a name, so 'ﬁsh' repeats 'fish'
        repeats = [_repeat(names[seen[key]], seen[key], n, i) for i, n in enumerate(names)
                   if seen.setdefault(key := normalise_name(n), i) != i]
        if repeats:
            problems.append(f"sidecar class names repeat: {', '.join(repeats[:SHOWN])}")
        if class_names is not None:
            if len(class_names) != len(names):
                problems.append(f"{len(names)} classes, the vocabulary has {len(class_names)}")
            else:
                first = next((i for i, (a, b) in enumerate(zip(names, class_names))
                              if normalise_name(a) != normalise_name(b)), None)  # 'Hard_Hat' is 'hard hat'
                if first is not None:
                    problems.append(f"class order differs from the vocabulary from row {first} on "
                                    f"({names[first]!r} here, {class_names[first]!r} there)")
    if sidecar.normalized and np.issubdtype(array.dtype, np.floating):
        norms = np.linalg.norm(array.astype(np.float64), axis=1)
        off = np.flatnonzero(np.isfinite(norms) & (norms > 0) & (np.abs(norms - 1.0) > NORM_TOLERANCE)).tolist()
        if off:
            problems.append(f"sidecar says rows are L2-normalised, rows {named_rows(off, names)} are not "
                            f"(norm {norms[off[0]]:.4f})")
    return problems


def check_classifier(path: str | os.PathLike, clip_model: str | None = None,
                     class_names: Sequence[str] | None = None) -> list[str]:
    """Every problem of the classifier at `path` (see the module docstring), one line each, file named."""
    try:
        array = load_matrix(path)
    except InputError as exc:
        return [str(exc)]
    if empty := empty_classifier(array):
        return [f"{path}: {empty}"]
    try:
        sidecar = read_sidecar(path)
    except InputError as exc:
        sidecar, problems = None, [str(exc)]
    else:
        problems = []
    names = sidecar.class_names if sidecar is not None and sidecar.class_names else None
    found = _array_problems(array, names, sidecar)
    if clip_model is not None and array.shape[1] != (dim := clip_embed_dim(clip_model)):
        found.append(f"rows are {array.shape[1]}-d, {clip_model} gives {dim}-d embeddings "
                     "(Detic: MODEL.ROI_BOX_HEAD.ZEROSHOT_WEIGHT_DIM must be the detector's)")
    if sidecar is not None:
        found += _sidecar_problems(array, sidecar, clip_model, class_names)
    elif class_names is not None and len(class_names) != array.shape[0]:
        found.append(f"{array.shape[0]} rows, the vocabulary has {len(class_names)} classes")
    return problems + [f"{path}: {p}" for p in found]
