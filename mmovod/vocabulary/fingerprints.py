"""What makes a vocabulary build resumable: the fingerprint of each classifier's inputs, and the test
that a classifier already on disk was made from them.

Each sidecar's `details.fingerprint` hashes what its rows depend on (CLIP model and weights file,
class names, sentences, each exemplar image's path, size, mtime and box, the images skipped as
unreadable, view settings (order and --skip-bad included), aggregator file; a fusion: its inputs' fingerprints). The plan
(`mmovod.vocabulary.plan`) computes them; a classifier whose file carries the same one is reused.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from mmovod.classifiers.sidecar import ClassifierSidecar, read_sidecar
from mmovod.clip.factory import clip_embed_dim, resolve_model_name
from mmovod.clip.specs import ClipSpec
from mmovod.io.arrays import load_matrix
from mmovod.io.errors import InputError
from mmovod.vocabulary.exemplar_folders import ExemplarSet


def digest(obj: Any) -> str:
    """A stable hash of a JSON-able object (sorted keys)."""
    return hashlib.sha256(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)).hexdigest()


def file_signature(path: str | os.PathLike) -> list[Any]:
    """(path, size, mtime) of a file: what a fingerprint records of a large input instead of its bytes."""
    st = Path(path).stat()
    return [str(path), st.st_size, st.st_mtime_ns]


def clip_description(spec: ClipSpec) -> dict[str, Any]:
    """What `ClipBundle.describe()` will say about `spec`, without loading weights."""
    return {"clip_model": spec.model, "pretrained": resolve_model_name(spec.model, spec.pretrained)[1],
            "embed_dim": clip_embed_dim(spec.model)}


def clip_identity(spec: ClipSpec) -> dict[str, Any]:
    """What the embeddings depend on: the model, its weights and the files naming them."""
    described = clip_description(spec)
    files = [file_signature(p) for p in (spec.model, described["pretrained"]) if p and Path(p).is_file()]
    return {"model": spec.model, "pretrained": described["pretrained"], "files": files}


def exemplar_identity(exemplars: ExemplarSet) -> dict[str, Any]:
    """Per class, per exemplar: its image's file signature and its box; and the images skipped as unreadable,
    which the vision sidecars list (a photo that breaks or is mended changes the record, if not the rows)."""
    return {"records": [[[*file_signature(r["file_name"]), r.get("bbox")] for r in records]
                        for records in exemplars.records],
            "skipped": [[s["class"], s["path"], s["reason"]] for s in exemplars.skipped]}


def reusable(path: Path, fingerprint: str) -> tuple[np.ndarray, ClassifierSidecar] | None:
    """The array and sidecar at `path` when they exist, agree, and were made with `fingerprint`."""
    try:
        sidecar = read_sidecar(path)
        if sidecar is None or sidecar.details.get("fingerprint") != fingerprint:
            return None
        array = load_matrix(path)
    except InputError:
        return None
    if tuple(array.shape) != tuple(sidecar.shape) or str(array.dtype) != sidecar.dtype:
        return None
    return array, sidecar
