"""Crop embeddings on disk: one feature cache (`mmovod.aggregator.feature_cache`) per CLIP and crop set.

The cache lives in `<cache_root>/<key>/`, where the key hashes everything the embeddings depend
on: the CLIP (model name, weights tag or the SHA-256 of a local weights file), the crop settings
(context, views, TTA, view seed) and the crops themselves (the annotation file's SHA-256, the box
selection settings and the list of selected boxes). A re-run, or another classifier of the same
CLIP, finds the finished cache and encodes nothing; an interrupted encoding resumes at the first
unfinished shard (shards are written atomically). A shard that exists but is unreadable, mis-shaped
or holds non-finite values is reported by name; `rebuild=True` deletes the cache and encodes it anew.
"""
from __future__ import annotations

import hashlib
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmovod.aggregator.cache_builder import cache_features
from mmovod.aggregator.class_sources import item_id
from mmovod.aggregator.distributed import DistContext
from mmovod.aggregator.feature_cache import (INDEX_FILE, CachePlan, ClassItems, FeatureCache, shard_is_complete,
                                             shard_name)
from mmovod.clip.factory import ClipBundle
from mmovod.clip.views import bundle_view_transform
from mmovod.evaluation.crops_from_annotations import EvalCrops
from mmovod.io.errors import InputError
from mmovod.io.json_files import dumps_json, load_json, save_json

log = logging.getLogger(__name__)

SHARD_SIZE = 4096
KEY_FILE = "eval_key.json"
SOURCE_KIND = "annotation-boxes"


@dataclass(frozen=True)
class CropSettings:
    """How each box becomes encoder inputs: `views` views (TTA views when more than one) of the box
    grown by `context` and made square (`mmovod.clip.crops`); view v of crop e of class c is seeded
    by (seed, c, e, v) as for exemplars."""

    context: float = 0.0
    views: int = 1
    seed: int = 0

    @property
    def tta(self) -> bool:
        return self.views > 1

    def __post_init__(self) -> None:
        if self.views < 1:
            raise InputError(f"--views must be at least 1, found {self.views}")
        if self.context < 0:
            raise InputError(f"--context must not be negative, found {self.context}")
        if self.seed < 0:
            raise InputError(f"--seed must not be negative, found {self.seed}")


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_identity(pretrained: str | None) -> str | None:
    """What identifies CLIP weights: a tag as given, a local file by its content."""
    if pretrained is not None and Path(pretrained).is_file():
        return "sha256:" + file_sha256(pretrained)
    return pretrained


def crop_plan(crops: EvalCrops) -> CachePlan:
    return CachePlan.from_classes([ClassItems(c.name, [item_id(r) for r in c.records]) for c in crops.classes],
                                  SHARD_SIZE)


def cache_key_document(clip_model: str, pretrained: str | None, crops: EvalCrops, settings: CropSettings,
                       selection: dict[str, Any]) -> dict[str, Any]:
    """Everything the cached embeddings depend on (see the module docstring)."""
    return {
        "clip_model": clip_model,
        "weights": weights_identity(pretrained),
        "crops": {"context": settings.context, "views": settings.views, "tta": settings.tta, "seed": settings.seed},
        "annotations_sha256": file_sha256(crops.ann_path),
        "selection": selection,
        "items_sha256": crop_plan(crops).items_sha256(),
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
    index = load_json(index_path, "cache index")
    rows, size, views, dim = index["num_rows"], index["shard_size"], index["views"], index["dim"]
    for shard in range(index["num_shards"]):
        path = root / shard_name(shard)
        expected = min(size, rows - shard * size)
        if path.exists() and not shard_is_complete(path, expected, views, dim):
            raise InputError(f"{path}: corrupt shard of the crop-embedding cache (unreadable or not "
                             f"({expected}, {views}, {dim}) float16); pass --rebuild-cache to encode it again")


def encode_into_cache(bundle: ClipBundle, crops: EvalCrops, root: Path, settings: CropSettings, *,
                      batch_size: int, workers: int, progress: bool) -> None:
    """The single call into the image-encoding pipeline: encode the unfinished shards of `root`."""
    cache_features(bundle, list(crops.classes), root, crops.roots, DistContext(0, 1, 0, bundle.device),
                   views=settings.views, tta_transform=bundle_view_transform(bundle, settings.tta),
                   tta=settings.tta, seed=settings.seed, context=settings.context, shard_size=SHARD_SIZE,
                   batch_size=batch_size, workers=workers, source_kind=SOURCE_KIND, progress=progress)


def is_complete(root: Path, crops: EvalCrops) -> bool:
    """True when `root` holds every shard of the crop set's plan."""
    if not (root / INDEX_FILE).is_file():
        return False
    plan = crop_plan(crops)
    return all((root / shard_name(s)).is_file() for s in range(plan.num_shards))


def write_key(root: Path, key_doc: dict[str, Any]) -> None:
    """Record the key beside the cache, for people (the folder name is its hash)."""
    save_json(root / KEY_FILE, key_doc, indent=True)


def read_view_embeddings(root: Path, crops: EvalCrops) -> np.ndarray:
    """float32 `(N, views, D)` raw embeddings of every crop, in crop order; a non-finite row names its shard."""
    try:
        return _read_views(root, crops)
    except InputError as exc:
        raise InputError(str(exc).replace("delete it and re-run the cache tool", "pass --rebuild-cache to encode it again")
                         .replace("re-run tools/cache_clip_features.py to finish it", "re-run to finish it")) from None


def _read_views(root: Path, crops: EvalCrops) -> np.ndarray:
    cache = FeatureCache(root)
    if cache.num_rows != crops.num_crops or cache.classes != [c.name for c in crops.classes]:
        raise InputError(f"{root}: the cache does not hold this crop set; pass --rebuild-cache")
    rows = np.arange(cache.num_rows)
    out = np.empty((cache.num_rows, cache.views, cache.dim), dtype=np.float32)
    for v in range(cache.views):
        features = cache.gather(rows, np.full_like(rows, v))
        cache.check_finite(rows, features)
        out[:, v] = features
    return out

