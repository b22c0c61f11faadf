"""Crop embeddings on disk: one feature cache (`mmovod.features.feature_cache`) per CLIP and crop set.

The cache lives in `<cache_root>/<key>/`, where the key hashes everything the embeddings depend
on: the CLIP by content (`mmovod.clip.identity.content_key`: the open_clip name and weights tag, or
the SHA-256 of a local config or weights file, so the same CLIP named by another path finds the
cache), the crop settings (context, views, TTA, view seed) and the crops themselves (the annotation
file's SHA-256, the box selection settings and the list of selected boxes). A re-run, or another
classifier of the same CLIP, finds the finished cache and encodes nothing; an interrupted encoding
resumes at the first unfinished shard (shards are written atomically). A shard that exists but is
unreadable, mis-shaped or holds non-finite values is reported by name; `rebuild=True` deletes the
cache and encodes it anew.
"""
from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from mmovod.readers.class_sources import item_id
from mmovod.features.feature_cache import (INDEX_FILE, CachePlan, ClassItems, FeatureCache, read_index, shard_is_complete,
                                   shard_name, shards_kept)
from mmovod.clip.identity import content_key, file_digest
from mmovod.clip.specs import ViewSpec
from mmovod.evaluation.crops_from_annotations import EvalCrops
from mmovod.io.errors import InputError
from mmovod.io.launcher import command
from mmovod.io.json_files import dumps_json, save_json

log = logging.getLogger(__name__)

SHARD_SIZE = 4096
KEY_FILE = "eval_key.json"
SOURCE_KIND = "annotation-boxes"


def crop_plan(crops: EvalCrops) -> CachePlan:
    return CachePlan.from_classes([ClassItems(c.name, [item_id(r) for r in c.records]) for c in crops.classes],
                                  SHARD_SIZE)


def crops_sha256(crops: EvalCrops) -> str:
    """Fingerprint of the crop set: every class's boxes (image file and bbox), in row order."""
    boxes = [[c.name, [[r["file_name"], r["bbox"]] for r in c.records]] for c in crops.classes]
    return hashlib.sha256(dumps_json(boxes)).hexdigest()


def crop_views(views: int = 1, context: float = 0.0, seed: int = 0, workers: int = 0) -> ViewSpec:
    """How each box becomes encoder inputs: `views` views (TTA views when more than one) of the box grown by
    `context` and made square (`mmovod.clip.crops`); view v of crop e of class c is seeded by (seed, c, e, v),
    as for exemplars: the exemplars' `ViewSpec`, one type for both."""
    return ViewSpec(num_views=views, tta=views > 1, context=context, seed=seed, workers=workers)


def cache_key_document(clip_model: str, pretrained: str | None, crops: EvalCrops, settings: ViewSpec,
                       selection: dict[str, Any]) -> dict[str, Any]:
    """Everything the cached embeddings depend on (see the module docstring)."""
    model, weights = content_key(clip_model, pretrained)
    return {
        "clip_model": model,
        "weights": weights,
        "crops": settings.provenance(),
        "annotations_sha256": file_digest(crops.ann_path),
        "selection": selection,
        "boxes_sha256": crops_sha256(crops),
        "shard_size": SHARD_SIZE,
    }


def cache_dir_for(cache_root: str | Path, key_doc: dict[str, Any]) -> Path:
    return Path(cache_root) / hashlib.sha256(dumps_json(key_doc)).hexdigest()[:20]


def check_shards(root: Path, rebuild: bool) -> None:
    """Refuse a cache folder holding an unreadable or mis-shaped shard (naming it), or delete the
    whole folder when `rebuild`. Missing shards are fine: encoding resumes there."""
    index_path = root / INDEX_FILE
    if not index_path.is_file():
        return
    if rebuild:
        log.info("--rebuild-cache: deleting %s", root)
        shutil.rmtree(root)
        return
    try:
        index = read_index(index_path)
    except InputError as exc:
        raise InputError(str(exc).replace(f"re-run {command('cache_clip_features')}", "pass --rebuild-cache")) from None
    rows, size, views, dim = index["num_rows"], index["shard_size"], index["num_views"], index["dim"]
    for shard in range(index["num_shards"]):
        path = root / shard_name(shard)
        expected = min(size, rows - shard * size)
        if path.exists() and not shard_is_complete(path, expected, views, dim):
            raise InputError(f"{path}: corrupt shard of the crop-embedding cache (unreadable or not "
                             f"({expected}, {views}, {dim}) float16); pass --rebuild-cache to encode it again")


def num_shards(crops: EvalCrops) -> int:
    return -(-crops.num_crops // SHARD_SIZE)


def is_complete(root: Path, crops: EvalCrops) -> bool:
    """True when `root` holds every shard of the crop set."""
    if not (root / INDEX_FILE).is_file():
        return False
    return all((root / shard_name(s)).is_file() for s in range(num_shards(crops)))


def cache_kept(root: Path, crops: EvalCrops) -> str | None:
    """What an interrupted evaluation leaves in the cache folder `root` (None: no folder)."""
    return shards_kept(root, num_shards(crops))


def write_key(root: Path, key_doc: dict[str, Any]) -> None:
    """Record the key beside the cache, for people (the folder name is its hash)."""
    save_json(root / KEY_FILE, key_doc, indent=True)


def read_view_embeddings(root: Path, crops: EvalCrops) -> np.ndarray:
    """float32 `(N, views, D)` raw embeddings of every crop, in crop order; a non-finite row names its shard."""
    try:
        return _read_views(root, crops)
    except InputError as exc:
        raise InputError(str(exc).replace("delete it and re-run the cache tool", "pass --rebuild-cache to encode it again")
                         .replace(f"re-run {command('cache_clip_features')} to finish it", "re-run to finish it")) from None


def _read_views(root: Path, crops: EvalCrops) -> np.ndarray:
    cache = FeatureCache(root)
    if cache.num_rows != crops.num_crops or cache.classes != [c.name for c in crops.classes]:
        raise InputError(f"{root}: the cache does not hold this crop set; pass --rebuild-cache")
    out = np.concatenate(cache.shards).astype(np.float32) if cache.shards else np.empty((0, cache.views, cache.dim))
    finite = np.isfinite(out).all(axis=(1, 2))
    if not finite.all():
        rows = np.arange(cache.num_rows)
        cache.check_finite(rows, out)
    return out
