"""Encoding crops with CLIP's image tower into the crop cache: the evaluation's one call into the
image-encoding pipeline (`mmovod.clip.image_encoding.encode_items`, through the resumable shards of
`mmovod.features.builder.cache_features`). torch and open_clip are imported here only, so a
warm cache needs neither."""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from mmovod.features.builder import cache_features
from mmovod.features.distributed import DistContext
from mmovod.clip.factory import ClipBundle, load_clip
from mmovod.evaluation import crop_cache
from mmovod.clip.specs import ViewSpec
from mmovod.evaluation.crop_cache import SOURCE_KIND
from mmovod.evaluation.crops_from_annotations import EvalCrops
from mmovod.io.errors import InputError

log = logging.getLogger(__name__)


def load_image_tower(clip_model: str, pretrained: str | None, device: str | None, dim: int | None) -> ClipBundle:
    """CLIP's image tower; InputError when its embeddings are not `dim`-d (the classifiers' row size)."""
    bundle = load_clip(clip_model, pretrained, device, tower="image")
    if dim is not None and bundle.embed_dim != dim:
        raise InputError(f"CLIP {clip_model} gives {bundle.embed_dim}-d embeddings, the classifiers have {dim}-d rows")
    return bundle


def encode_into_cache(bundle: ClipBundle, crops: EvalCrops, root: Path, settings: ViewSpec, *,
                      batch_size: int, workers: int, progress: bool) -> None:
    """Encode the unfinished shards of the cache folder `root` (raw embeddings, `settings.num_views` views per crop,
    `workers` DataLoader processes)."""
    cache_features(bundle, list(crops.classes), root, crops.roots, DistContext(0, 1, 0, bundle.device),
                   dataclasses.replace(settings, workers=workers), shard_size=crop_cache.SHARD_SIZE, batch_size=batch_size,
                   source_kind=SOURCE_KIND, progress=progress)
