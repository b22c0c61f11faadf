"""Multi-modal classifier fusion: L2-normalise two classifiers row-wise, add, optionally re-normalise."""
from __future__ import annotations

import os

import numpy as np

from mmovod.classifiers.sidecar import (Classifier, ClassifierSidecar, check_classifier_path, classifier_files,
                                       load_classifier, make_sidecar, save_classifier)
from mmovod.io.errors import InputError


def check_finite_nonzero(array: np.ndarray, path: str | os.PathLike) -> None:
    """Raise InputError naming the first row that holds NaN/inf or is all zeros (it cannot be normalised)."""
    bad = ~np.isfinite(array).all(axis=1)
    if bad.any():
        raise InputError(f"{path}: row {int(np.flatnonzero(bad)[0])} holds NaN or infinite values")
    zero = ~array.any(axis=1)
    if zero.any():
        raise InputError(f"{path}: row {int(np.flatnonzero(zero)[0])} is all zeros and cannot be L2-normalised")


def l2_normalise_rows(array: np.ndarray) -> np.ndarray:
    """Each row divided by its L2 norm (float64 arithmetic, result in float64)."""
    values = array.astype(np.float64)
    return values / np.linalg.norm(values, axis=1, keepdims=True)


def fuse_classifiers(feat1: np.ndarray, feat2: np.ndarray, final_norm: bool = True) -> np.ndarray:
    """normalise(feat1) + normalise(feat2), normalised again unless `final_norm` is False; float32 (C, D).

    Inputs must have the same 2-D shape with finite, non-zero rows (check_finite_nonzero).
    """
    fused = l2_normalise_rows(feat1) + l2_normalise_rows(feat2)
    if final_norm:
        fused = l2_normalise_rows(fused)
    return fused.astype(np.float32)


def fused_rows(text: np.ndarray, vision: np.ndarray) -> np.ndarray:
    """float64 `(C, D)`: l2(l2(text) + l2(vision)) per row; for a class without exemplars (a zero vision
    row), l2(l2(text) + l2(l2(text) + gap)), where `gap` is the mean of l2(vision) - l2(text) over the
    classes with exemplars; l2(text) when no class has any.

    A fused row points between CLIP's text and image regions; a text-only row would point at the text
    region, where image embeddings (a detector's regions) score lower, so crops of classes without
    exemplars would go to classes with them. Moving the missing vision direction by the mean
    text-to-image gap puts every row in the same region; only directions change (detectors normalise rows),
    and rows of classes with exemplars are exactly those of `fuse_classifiers`.
    """
    has = vision.any(axis=1)
    unit_text = l2_normalise_rows(text)
    estimated = unit_text.copy()
    if has.any():
        gap = (l2_normalise_rows(vision[has]) - unit_text[has]).mean(axis=0)
        estimated = l2_normalise_rows(unit_text + gap)
        estimated[has] = l2_normalise_rows(vision[has])
    fused = unit_text + estimated if has.any() else unit_text
    return l2_normalise_rows(fused)


def fuse_with_text_fallback(text: np.ndarray, vision: np.ndarray) -> np.ndarray:
    """`fused_rows` as float32 `(C, D)`: the build's multi-modal rows."""
    return fused_rows(text, vision).astype(np.float32)


def text_only_rule(text_only_classes: int, classes: int) -> str:
    """What the sidecar records about the rows of classes without exemplars."""
    if not text_only_classes:
        return "none: every class has exemplars"
    if text_only_classes == classes:
        return "no class has exemplars: l2(text)"
    return (f"l2(l2(text) + l2(l2(text) + gap)), gap = mean of l2(vision) - l2(text) over the "
            f"{classes - text_only_classes} classes with exemplars")


def check_same_classes(first: Classifier, second: Classifier) -> None:
    """InputError when two classifiers cannot be fused row by row: other shapes, other CLIP models,
    or (where both sidecars say) another class order."""
    if first.array.shape != second.array.shape:
        raise InputError(f"{second.path}: shape {second.array.shape} does not match {first.path} {first.array.shape}")
    a, b = first.sidecar, second.sidecar
    if a is None or b is None:
        return
    if a.clip_model and b.clip_model and (a.clip_model, a.pretrained) != (b.clip_model, b.pretrained):
        raise InputError(f"{second.path}: made with CLIP {b.clip_model} ({b.pretrained}), "
                         f"{first.path} with {a.clip_model} ({a.pretrained})")
    for key in ("category_ids", "class_names"):
        x, y = getattr(a, key), getattr(b, key)
        if x is not None and y is not None and x != y:
            row = next(i for i, (u, v) in enumerate(zip(x, y)) if u != v)
            raise InputError(f"{second.path}: row {row} is {key[:-1].replace('_', ' ')} {y[row]!r}, "
                             f"in {first.path} it is {x[row]!r} (another class order)")


def fusion_space(first: ClassifierSidecar | None, second: ClassifierSidecar | None) -> str:
    """`clip` when both inputs are (or are assumed) CLIP-space rows, else `mixed`."""
    spaces = {s.space if s is not None else "clip" for s in (first, second)}
    return "clip" if spaces == {"clip"} else "mixed"


def fuse_classifier_files(feat1_path: str | os.PathLike, feat2_path: str | os.PathLike, out_path: str | os.PathLike,
                          final_norm: bool = True, *, command: str | None = None) -> tuple[int, int]:
    """Fuse two classifier `.npy` files into `out_path` (float32 `(C, D)` and a sidecar naming both sources).

    Returns the fused shape; InputError for mismatched shapes, CLIP models or class orders, and for
    rows that cannot be normalised.
    """
    check_classifier_path(out_path, [*classifier_files(feat1_path), *classifier_files(feat2_path)])
    first, second = load_classifier(feat1_path), load_classifier(feat2_path)
    check_same_classes(first, second)
    check_finite_nonzero(first.array, feat1_path)
    check_finite_nonzero(second.array, feat2_path)
    fused = fuse_classifiers(first.array, second.array, final_norm)
    known = next((s for s in (first.sidecar, second.sidecar) if s is not None), None)
    clip = {"clip_model": known.clip_model, "pretrained": known.pretrained, "embed_dim": known.embed_dim} if known else None
    save_classifier(out_path, fused, make_sidecar(
        fused, "multi-modal", clip, space=fusion_space(first.sidecar, second.sidecar), normalized=final_norm,
        class_names=known.class_names if known else None, category_ids=known.category_ids if known else None,
        command=command, details={
            "formula": "l2(l2(feat1) + l2(feat2))" if final_norm else "l2(feat1) + l2(feat2)",
            "sources": {
                "feat1": {"path": str(feat1_path), "sidecar": first.sidecar.to_json() if first.sidecar else None},
                "feat2": {"path": str(feat2_path), "sidecar": second.sidecar.to_json() if second.sidecar else None},
            },
        }))
    return fused.shape
