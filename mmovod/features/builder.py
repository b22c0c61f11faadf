"""Encode a class source into a feature cache (`mmovod.features.feature_cache`), on one process or many (torchrun).

Each row is one image (or exemplar crop) encoded as `views.num_views` views by the CLIP image tower,
through the one image-encoding pipeline (`mmovod.clip.image_encoding.encode_items`): view v of item e
of class c is the same deterministic view as in the vision-classifier tools, independent of workers,
rank or order. Shard i is encoded by rank i mod world_size in batches that start at the shard's first
row, so a shard's bytes do not depend on how many processes share the work. Finished shards are
skipped on a re-run. An unreadable image stops the run, naming it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
from tqdm import tqdm

from mmovod.readers.class_sources import (TREE_DATASET, SourceClass, exemplar_dict_classes, folder_tree_classes,
                                            item_id, lvis_rare_synsets, lvis_rare_wnids, select_classes)
from mmovod.clip.factory import ClipBundle, load_clip
from mmovod.clip.specs import ClipSpec, ViewSpec
from mmovod.features.distributed import DistContext, all_agree, barrier, init_distributed, shutdown
from mmovod.io.atomic import check_output_dir
from mmovod.io.errors import InputError, interruption_keeps
from mmovod.readers.class_list import read_class_list
from mmovod.readers.image_roots import default_image_roots
from mmovod.features.feature_cache import DEFAULT_SHARD_SIZE, CacheMeta, CachePlan, ClassItems, prepare_cache_dir, shard_is_complete, shard_name, shards_kept, write_shard
from mmovod.clip.image_encoding import Item, encode_items

log = logging.getLogger(__name__)


def shard_items(classes: list[SourceClass], plan: CachePlan, rows: range) -> list[Item]:
    """The (class index, item index, record) of each row in `rows`."""
    offsets = np.asarray(plan.class_offsets)
    out = []
    for row in rows:
        c = int(np.searchsorted(offsets, row, side="right")) - 1
        e = row - int(offsets[c])
        out.append((c, e, classes[c].records[e]))
    return out


@dataclass
class CacheRun:
    root: Path
    rows: int
    shards: int
    encoded: int
    skipped: int
    classes: int


def cache_features(
    bundle: ClipBundle,
    classes: list[SourceClass],
    out: str | Path,
    roots: Mapping[str, Path],
    ctx: DistContext,
    views: ViewSpec,
    *,
    shard_size: int,
    batch_size: int | None,
    source_kind: str,
    progress: bool = True,
) -> CacheRun:
    """Plan the cache of `classes`, then encode this rank's unfinished shards (rank r: shards r, r+W, ...).

    Rank 0 writes the index; every rank checks that an existing index describes the same plan and
    settings (CLIP model, views, TTA, seed, items) before encoding anything.
    """
    plan = CachePlan.from_classes([ClassItems(c.name, [item_id(r) for r in c.records]) for c in classes], shard_size)
    extra = {"source": source_kind, "tta": views.tta, "seed": views.seed, "context": views.context}
    if views.tta and views.order != "original":  # caches without the key hold original-order views
        extra["view_order"] = views.order
    meta = CacheMeta(bundle.describe(), bundle.embed_dim, views.num_views, extra)
    failure: InputError | None = None
    if ctx.is_main:
        try:
            prepare_cache_dir(out, plan, meta, write=True)
        except InputError as exc:
            failure = exc
    if not all_agree(ctx, failure is None):
        raise failure or InputError(f"{out}: rank 0 could not prepare the cache (see its error)")
    root = prepare_cache_dir(out, plan, meta, write=False)
    mine = list(range(ctx.rank, plan.num_shards, ctx.world_size))
    encoded = skipped = 0
    who = f" (rank {ctx.rank} of {ctx.world_size})" if ctx.distributed else ""
    bar = tqdm(total=sum(len(plan.shard_rows(s)) for s in mine), unit="image", desc=f"encoding the cache{who}",
               disable=not progress)
    with bar, interruption_keeps(lambda: shards_kept(root, plan.num_shards)):  # Ctrl-C: says how many are kept
        for shard in mine:
            rows = plan.shard_rows(shard)
            if shard_is_complete(root / shard_name(shard), len(rows), views.num_views, bundle.embed_dim):
                skipped += 1
                bar.update(len(rows))
                continue
            encoded_rows = encode_items(bundle, shard_items(classes, plan, rows), roots, views, batch_size=batch_size,
                                        progress=False)
            write_shard(root, shard, encoded_rows.embeddings.numpy())
            encoded += 1
            bar.update(len(rows))
    barrier(ctx)
    log.info("%d shards encoded%s, %d already finished", encoded, who, skipped)
    return CacheRun(root, plan.num_rows, plan.num_shards, encoded, skipped, len(classes))


@dataclass(frozen=True)
class ClassFilter:
    """Which classes of a source to cache: `keep_file` lists the ones kept (None: all), `exclude_file`
    the ones left out, `lvis_ann` leaves out the LVIS-rare classes (wnids of a tree, synsets of a
    dictionary); classes under `min_images` images are skipped (an error with `strict`)."""

    keep_file: str | None = None
    exclude_file: str | None = None
    lvis_ann: str | None = None
    min_images: int = 2
    strict: bool = False


def source_classes(image_root: str | None, exemplar_dict: str | None,
                   class_filter: ClassFilter) -> tuple[list[SourceClass], str]:
    """The selected classes of a folder tree (`image_root`) or an exemplar dictionary, and the source kind."""
    if (image_root is None) == (exemplar_dict is None):
        raise InputError("give exactly one source: a folder tree or an exemplar dictionary")
    if class_filter.min_images < 1:
        raise InputError(f"minimum images per class must be at least 1, found {class_filter.min_images}")
    keep = set(read_class_list(class_filter.keep_file)) if class_filter.keep_file else None
    exclude = set(read_class_list(class_filter.exclude_file)) if class_filter.exclude_file else set()
    if image_root:
        classes, where, kind = folder_tree_classes(image_root), image_root, "folder-tree"
        if class_filter.lvis_ann:
            exclude |= lvis_rare_wnids(class_filter.lvis_ann)
    else:
        classes, where, kind = exemplar_dict_classes(exemplar_dict), exemplar_dict, "exemplar-dict"
        if class_filter.lvis_ann:
            exclude |= lvis_rare_synsets(class_filter.lvis_ann)
    return select_classes(classes, keep, exclude, class_filter.min_images, class_filter.strict, where), kind


def cache_clip_features(
    out: str | Path,
    *,
    image_root: str | None = None,
    exemplar_dict: str | None = None,
    class_filter: ClassFilter = ClassFilter(),
    clip: ClipSpec,
    views: ViewSpec,
    roots: Mapping[str, Path] | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
) -> CacheRun | None:
    """Select the classes of a folder tree (`image_root`) or an exemplar dictionary (`exemplar_dict`),
    join the torchrun group (if any), load CLIP's image tower and `cache_features` them into `out`.

    `roots` are the image roots of exemplar records (default: the guide's folders). Returns the run
    on the main rank, None on the others.
    """
    check_output_dir(out)
    if views.num_views > 1 and not views.tta:
        raise InputError(f"--views {views.num_views}: more than 1 view only with --tta (plain views are identical)")
    classes, kind = source_classes(image_root, exemplar_dict, class_filter)
    roots = dict(roots or default_image_roots())
    if image_root:
        roots[TREE_DATASET] = Path(image_root)
    ctx = init_distributed(clip.device)
    try:
        bundle = load_clip(clip.model, clip.pretrained, str(ctx.device), tower="image")
        result = cache_features(bundle, classes, out, roots, ctx, views, shard_size=shard_size,
                                batch_size=clip.batch_size, source_kind=kind,
                                progress=ctx.is_main)
    finally:
        shutdown(ctx)
    return result if ctx.is_main else None
