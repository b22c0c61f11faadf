"""The classifier to hand off: its rows and what describes them (its sidecar, or for a file without
one, such as the authors' released `.npy` files, the class names, CLIP and space given by the caller).

Class names come from the sidecar, else from a class-names file read as a vocabulary
(`mmovod.readers.vocabulary_file`: one name a line, a JSON/YAML class list, or an LVIS/COCO annotation
file, whose categories are matched to the rows by the sidecar's `category_ids` when it has them).
A class-names file that disagrees with the sidecar's own names, a CLIP that disagrees with the
sidecar's, and a file without sidecar whose CLIP is not given, or whose rows are not that CLIP's
width, are InputErrors naming the file.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmovod.classifiers.sidecar import ClassifierSidecar, load_classifier, make_sidecar
from mmovod.clip.identity import architecture
from mmovod.io.errors import InputError
from mmovod.readers.vocabulary_file import normalise_name, read_vocabulary


@dataclass(frozen=True)
class HandoffSource:
    """A classifier's rows `(C, D)` as read, and the sidecar that describes them (made from the caller's
    facts for a file without one); `space` is None where neither the sidecar nor the caller says it."""

    path: Path
    array: np.ndarray
    sidecar: ClassifierSidecar
    space: str | None

    @property
    def kind(self) -> str:
        return self.sidecar.kind


def _names_from_file(path: str | os.PathLike, sidecar: ClassifierSidecar | None, rows: int,
                     where: str) -> tuple[list[str], list[int | None] | None]:
    """The row names (and category ids) a class-names file gives for `rows` rows."""
    vocab = read_vocabulary(path)
    ids = [c.category_id for c in vocab.classes]
    own_ids = sidecar.category_ids if sidecar is not None else None
    if own_ids is not None and all(i is not None for i in own_ids) and all(i is not None for i in ids):
        by_id = {c.category_id: c.name for c in vocab.classes}
        missing = [i for i in own_ids if i not in by_id]
        if missing:
            raise InputError(f"{path}: has no category id {missing[0]}, which row {own_ids.index(missing[0])} of "
                             f"{where} is for ({len(missing)} rows unmatched)")
        return [by_id[i] for i in own_ids], list(own_ids)
    if len(vocab) != rows:
        raise InputError(f"{path}: lists {len(vocab)} classes, {where} has {rows} rows (one per class, in order)")
    return vocab.names, ids if any(i is not None for i in ids) else None


def _check_same_names(given: list[str], own: list[str], names_file: str | os.PathLike) -> None:
    first = next((i for i, (a, b) in enumerate(zip(given, own)) if normalise_name(a) != normalise_name(b)), None)
    if first is not None:
        raise InputError(f"{names_file}: row {first} is {given[first]!r}, the classifier's sidecar says {own[first]!r} "
                         "(leave out --class-names to use the sidecar's names)")


def read_source(path: str | os.PathLike, *, class_names: str | os.PathLike | None = None,
                clip_model: str | None = None, pretrained: str | None = None, space: str | None = None,
                ) -> HandoffSource:
    """Read the classifier at `path` with what describes it (see the module docstring).

    `clip_model`/`pretrained` and `space` describe a file without sidecar; with a sidecar they must
    agree with it (`space` and `pretrained` are then ignored)."""
    loaded = load_classifier(path)
    own = loaded.sidecar
    where = str(path)
    array = loaded.array
    if own is None:
        if clip_model is None:
            raise InputError(f"{path}: no sidecar names the CLIP that made it; pass --clip_model (and --pretrained)")
        from mmovod.clip.factory import clip_embed_dim  # open_clip's configs: imported here, so `export --help` stays light
        if array.ndim == 2 and array.shape[1] != (width := clip_embed_dim(clip_model)):
            raise InputError(f"{path}: rows are {array.shape[1]}-d, but --clip_model {clip_model} gives {width}-d "
                             "embeddings: name the CLIP that made it")
        side = make_sidecar(array, "other", {"clip_model": clip_model, "pretrained": pretrained},
                            space=space or "clip", details={"described_by": "the export's flags (no sidecar)"})
    else:
        if clip_model is not None and own.clip_model is not None \
                and architecture(own.clip_model) != architecture(clip_model):
            raise InputError(f"{path}: made with CLIP {own.clip_model}, but --clip_model says {clip_model}")
        side, space = own, own.space
    if class_names is not None:
        names, ids = _names_from_file(class_names, own, array.shape[0], where)
        if own is not None and own.class_names:
            _check_same_names(names, own.class_names, class_names)
        side = dataclasses.replace(side, class_names=names, category_ids=side.category_ids or ids)
    return HandoffSource(Path(path), array, side, space)
