"""The classifier-file contract: `X.npy` (float `(C, D)`) and its sidecar `X.npy.json`, one schema for every tool.

A classifier made with another CLIP, or rows in another class order, is silently useless to a
detector; the sidecar records what made the file so that readers can check before use.

Schema (version 2): `schema_version`, `kind` (one of `mmovod.classifiers.kinds.sidecar_kinds()`),
`shape`, `dtype`, `clip_model`, `pretrained`, `embed_dim`, `space` (one of `kinds.SPACES`: `clip`,
`aggregator` or `mixed`, see `mmovod.classifiers.kinds`), `normalized` (rows L2-normalised),
`class_names`, `category_ids` (row order; None where unknown), `command` (the command that made it,
passed in by the caller), `details` (kind-specific provenance, the keys of the kind's row: prompts,
sources, views, seeds, skipped images, ...; and where the files it names are, relative to the
sidecar: `clip_files`, `input_files`, `working_folder`, see `mmovod.classifiers.sidecar_files`).

Older files stay readable: version 1 spelled some `details` keys otherwise (`num_augs`,
`reduction`, `normalisation`: read as `num_views`, `combine`, `formula`); files from before the schema (no `schema_version`) are mapped too (`normalised` /
`normalisation` -> `normalized`, top-level provenance -> `details`).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from mmovod.classifiers.kinds import KINDS, SPACES, sidecar_kinds
from mmovod.classifiers.sidecar_files import location_details
from mmovod.clip.identity import clip_files
from mmovod.io.arrays import load_matrix, npy_bytes
from mmovod.io.atomic import check_output_path, write_files_together
from mmovod.io.errors import InputError
from mmovod.io.json_files import dumps_json, load_json

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)


@dataclass(frozen=True)
class ClassifierSidecar:
    """What made a classifier file (see the module docstring for each field)."""

    kind: str
    shape: tuple[int, int]
    dtype: str
    clip_model: str | None
    pretrained: str | None
    embed_dim: int | None
    space: str = "clip"
    normalized: bool = False
    class_names: list[str] | None = None
    category_ids: list[int | None] | None = None
    command: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        doc = dataclasses.asdict(self)
        doc["shape"] = list(self.shape)
        return {"schema_version": doc.pop("schema_version"), **doc}

    @property
    def num_classes(self) -> int:
        return self.shape[0]


def sidecar_path(npy_path: str | os.PathLike) -> Path:
    return Path(str(npy_path) + ".json")


def classifier_files(path: str | os.PathLike | None) -> list[Path]:
    """A classifier `.npy` and its `.npy.json` sidecar (none for None): the files it is read from."""
    return [] if path is None else [Path(path), sidecar_path(path)]


def check_classifier_path(path: str | os.PathLike, inputs: Iterable[str | os.PathLike | None] = ()) -> Path:
    """`check_output_path` for a classifier `.npy` and its `.npy.json` sidecar (both are written), neither of
    which may be one of the command's `inputs`."""
    inputs = list(inputs)
    out = check_output_path(path, inputs)
    check_output_path(sidecar_path(path), inputs)
    return out


def make_sidecar(array: np.ndarray, kind: str, clip: dict[str, Any] | None, *, space: str = "clip",
                 normalized: bool = False, class_names: Sequence[str] | None = None,
                 category_ids: Sequence[int | None] | None = None, command: str | None = None,
                 details: dict[str, Any] | None = None) -> ClassifierSidecar:
    """A sidecar for `array`; `clip` is `ClipBundle.describe()` (model, pretrained, embed_dim) or None."""
    clip = clip or {}
    return ClassifierSidecar(
        kind=kind, shape=(int(array.shape[0]), int(array.shape[1])), dtype=str(array.dtype),
        clip_model=clip.get("clip_model"), pretrained=clip.get("pretrained"), embed_dim=clip.get("embed_dim"),
        space=space, normalized=normalized, class_names=list(class_names) if class_names is not None else None,
        category_ids=list(category_ids) if category_ids is not None else None, command=command,
        details=dict(details or {}),
    )


def sidecar_bytes(sidecar: ClassifierSidecar, folder: Path) -> bytes:
    """The sidecar document as written into `folder`, with where the files it names are from there:
    its CLIP files (`clip_files`) and its other inputs (`mmovod.classifiers.sidecar_files`)."""
    files = clip_files({"clip_model": sidecar.clip_model, "pretrained": sidecar.pretrained}, folder)
    located = {**({"clip_files": files} if files else {}), **location_details(sidecar.details, folder)}
    if located:  # found again from another working folder, after a move, or by content on another machine
        sidecar = dataclasses.replace(sidecar, details={**sidecar.details, **located})
    return dumps_json(sidecar.to_json(), indent=True)


def save_classifier(path: str | os.PathLike, array: np.ndarray, sidecar: ClassifierSidecar) -> None:
    """Write a classifier `.npy` and its sidecar together: both appear, or neither is new or changed."""
    check_classifier_path(path)
    if tuple(array.shape) != tuple(sidecar.shape) or str(array.dtype) != sidecar.dtype:
        raise ValueError(f"sidecar describes {sidecar.shape} {sidecar.dtype}, array is {array.shape} {array.dtype}")
    write_files_together({Path(path): npy_bytes(array), sidecar_path(path): sidecar_bytes(sidecar, Path(path).parent)})


_LEGACY_TOP_LEVEL = {"shape", "dtype", "clip_model", "pretrained", "embed_dim", "category_ids", "command",
                     "normalized", "normalised", "normalisation", "kind"}


def _from_legacy(doc: dict[str, Any]) -> dict[str, Any]:
    """Map a pre-schema sidecar (mmovod 0.1) onto the version-1 fields."""
    if "normalized" in doc:
        normalized = bool(doc["normalized"])
    elif "normalised" in doc:
        normalized = bool(doc["normalised"])
    else:  # fusion wrote `normalisation`: a formula, normalised unless the final norm was skipped
        normalized = str(doc.get("normalisation", "")).startswith("l2(l2(")
    kind = {"multi-modal fusion": "multi-modal"}.get(doc.get("kind"), "other")
    if "aggregator" in doc:
        kind = "vision-aggregated"
    elif "exemplar_list" in doc:
        kind = "vision-average"
    elif "prompt" in doc:
        kind = "text"
    elif "sentences_per_class" in doc:
        kind = "descriptions"
    return {
        "kind": kind, "shape": doc.get("shape"), "dtype": doc.get("dtype"), "clip_model": doc.get("clip_model"),
        "pretrained": doc.get("pretrained"), "embed_dim": doc.get("embed_dim"),
        "space": KINDS[kind].space, "normalized": normalized,
        "category_ids": doc.get("category_ids"), "command": doc.get("command"),
        "details": {k: v for k, v in doc.items() if k not in _LEGACY_TOP_LEVEL},
    }


RENAMED_DETAILS = {"num_augs": "num_views", "reduction": "combine", "normalisation": "formula"}
"""Version-1 spellings of `details` keys -> the current ones."""


def _current_details(details: dict[str, Any]) -> dict[str, Any]:
    """`details` with the current key spellings (`RENAMED_DETAILS`)."""
    return {(RENAMED_DETAILS[k] if k in RENAMED_DETAILS and RENAMED_DETAILS[k] not in details else k): v
            for k, v in details.items()}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


# the type of every field a reader relies on: (check, what it must be); None is allowed where noted below
_OPTIONAL_FIELDS: dict[str, tuple[Any, str]] = {
    "clip_model": (lambda v: isinstance(v, str), "a string"),
    "pretrained": (lambda v: isinstance(v, str), "a string"),
    "embed_dim": (lambda v: _is_int(v) and v > 0, "an integer above 0"),
    "dtype": (lambda v: isinstance(v, str), "a string"),
    "command": (lambda v: isinstance(v, str), "a string"),
}
DETAIL_FIELDS: dict[str, tuple[Any, str]] = {
    "classes_without_exemplars": (_is_strings, "a list of strings"),
    "num_layers": (lambda v: _is_int(v) and v > 0, "an integer above 0"),
    "sources": (lambda v: isinstance(v, dict), "an object"),
    "skipped_images": (lambda v: isinstance(v, list) and all(isinstance(i, dict) for i in v), "a list of objects"),
    "fingerprint": (lambda v: isinstance(v, str), "a string"),
    "input_files": (lambda v: isinstance(v, dict) and all(isinstance(r, dict) for r in v.values()), "an object of objects"),
    "working_folder": (lambda v: isinstance(v, dict), "an object"),
}


def _check_field_types(doc: dict[str, Any], details: dict[str, Any], rows: int, where: str) -> None:
    """InputError naming the first field whose value has the wrong type (`clip_model: 512`)."""
    for key, (ok, what) in _OPTIONAL_FIELDS.items():
        if doc.get(key) is not None and not ok(doc[key]):
            raise InputError(f"{where}: '{key}' must be {what} or null, found {doc[key]!r:.60}")
    if not isinstance(doc.get("normalized", False), bool):
        raise InputError(f"{where}: 'normalized' must be true or false, found {doc['normalized']!r:.60}")
    names = doc.get("class_names")
    if names is not None and (not _is_strings(names) or len(names) != rows):
        raise InputError(f"{where}: 'class_names' must be a list of {rows} strings")
    for r, name in enumerate(names or []):
        if len(name.strip().splitlines()) != 1:  # blank, or broken over lines: the exported class lists would shift
            raise InputError(f"{where}: 'class_names' row {r} is {name!r:.60}, expected a name on one line")
    ids = doc.get("category_ids")
    if ids is not None and (not isinstance(ids, list) or len(ids) != rows
                            or not all(i is None or _is_int(i) for i in ids)):
        raise InputError(f"{where}: 'category_ids' must be a list of {rows} integer ids (or nulls), one per row")
    first_row: dict[int, int] = {}
    for r, i in enumerate(ids or []):
        if i is not None and first_row.setdefault(i, r) != r:
            raise InputError(f"{where}: 'category_ids' has id {i} on rows {first_row[i]} and {r}; each row is one category")
    for key, (ok, what) in DETAIL_FIELDS.items():
        if details.get(key) is not None and not ok(details[key]):
            raise InputError(f"{where}: details '{key}' must be {what}, found {details[key]!r:.60}")


def parse_sidecar(doc: Any, where: str) -> ClassifierSidecar:
    """Validate a decoded sidecar document (any schema version this code knows) into a ClassifierSidecar."""
    if not isinstance(doc, dict):
        raise InputError(f"{where}: a classifier sidecar must be a JSON object")
    version = doc.get("schema_version")
    if version is None:
        doc = _from_legacy(doc)
    elif version not in READABLE_VERSIONS:
        raise InputError(f"{where}: sidecar schema_version {version!r} is not supported (this mmovod reads "
                         f"{', '.join(map(str, READABLE_VERSIONS))})")
    shape = doc.get("shape")
    if not (isinstance(shape, list) and len(shape) == 2 and all(_is_int(n) and n >= 0 for n in shape)):
        raise InputError(f"{where}: 'shape' must be [classes, dim], found {shape!r}")
    if doc.get("kind") not in sidecar_kinds():
        raise InputError(f"{where}: 'kind' must be one of {', '.join(sidecar_kinds())}, found {doc.get('kind')!r}")
    if doc.get("space", "clip") not in SPACES:
        raise InputError(f"{where}: 'space' must be one of {', '.join(SPACES)}, found {doc.get('space')!r}")
    details = doc.get("details", {})
    if not isinstance(details, dict):
        raise InputError(f"{where}: 'details' must be a JSON object")
    details = _current_details(details)
    _check_field_types(doc, details, shape[0], where)
    return ClassifierSidecar(
        kind=doc["kind"], shape=(shape[0], shape[1]), dtype=str(doc.get("dtype")), clip_model=doc.get("clip_model"),
        pretrained=doc.get("pretrained"), embed_dim=doc.get("embed_dim"), space=doc.get("space", "clip"),
        normalized=doc.get("normalized", False), class_names=doc.get("class_names"), category_ids=doc.get("category_ids"),
        command=doc.get("command"), details=details,
    )


def read_sidecar(npy_path: str | os.PathLike) -> ClassifierSidecar | None:
    """The validated sidecar of `npy_path`, or None when there is none."""
    side = sidecar_path(npy_path)
    if not side.is_file():
        return None
    return parse_sidecar(load_json(side, "classifier sidecar"), str(side))


def empty_classifier(array: np.ndarray) -> str | None:
    """What makes a `(C, D)` array no classifier at all (no rows, or rows of no numbers), else None."""
    if array.shape[0] == 0:
        return "no rows (0 classes): a detector would have nothing to classify into"
    if array.shape[1] == 0:
        return f"rows of 0 numbers ({array.shape[0]} x 0): no embedding to compare with"
    return None


@dataclass(frozen=True)
class Classifier:
    """A classifier array with its sidecar (None for a bare `.npy`)."""

    path: Path
    array: np.ndarray
    sidecar: ClassifierSidecar | None


def load_classifier(path: str | os.PathLike, *, embed_dim: int | None = None, clip_model: str | None = None,
                    num_classes: int | None = None) -> Classifier:
    """Read a classifier and check it against its sidecar and against what the caller expects.

    Checks: the array is 2-D numeric with rows and columns; the sidecar (when present) describes this array's shape and
    dtype; the embedding size equals `embed_dim`, the sidecar's CLIP equals `clip_model`, the row
    count equals `num_classes` (each when given). Every mismatch is an InputError naming the file.
    """
    array = load_matrix(path)
    if empty := empty_classifier(array):
        raise InputError(f"{path}: {empty}")
    sidecar = read_sidecar(path)
    if sidecar is not None:
        if tuple(sidecar.shape) != tuple(array.shape):
            raise InputError(f"{path}: sidecar says shape {list(sidecar.shape)}, the array is {list(array.shape)}")
        if sidecar.dtype != str(array.dtype):
            raise InputError(f"{path}: sidecar says dtype {sidecar.dtype}, the array is {array.dtype}")
        if clip_model is not None and sidecar.clip_model is not None and sidecar.clip_model != clip_model:
            raise InputError(f"{path}: made with CLIP {sidecar.clip_model}, expected {clip_model}")
    if embed_dim is not None and array.shape[1] != embed_dim:
        raise InputError(f"{path}: rows are {array.shape[1]}-d, the CLIP model gives {embed_dim}-d embeddings")
    if num_classes is not None and array.shape[0] != num_classes:
        raise InputError(f"{path}: {array.shape[0]} rows, expected one per class ({num_classes})")
    return Classifier(Path(path), array, sidecar)
