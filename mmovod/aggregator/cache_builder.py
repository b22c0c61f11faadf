"""Encode a class source into a feature cache (`mmovod.aggregator.feature_cache`), on one process or many (torchrun).

Each row is one image (or exemplar crop) encoded as `views` views by the CLIP image tower. View v of
item e of class c is `mmovod.clip.views.make_view(crop, transform, seed, c, e, v)`: the same deterministic
views as the vision-classifier tools, independent of batch size, workers, rank or order. Shard i is
encoded by rank i mod world_size in batches that start at the shard's first row, so a shard's
bytes do not depend on how many processes share the work. Finished shards are skipped on a re-run.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from mmovod.aggregator.class_sources import (TREE_DATASET, SourceClass, exemplar_dict_classes, folder_tree_classes, item_id,
                            lvis_rare_synsets, lvis_rare_wnids, read_name_list, select_classes)
from mmovod.clip.factory import load_clip
from mmovod.clip.crops import BadImageError, load_exemplar_crop
from mmovod.aggregator.distributed import DistContext, all_agree, barrier, init_distributed, shutdown
from mmovod.io.atomic import check_output_dir
from mmovod.io.errors import InputError
from mmovod.aggregator.feature_cache import CacheMeta, CachePlan, ClassItems, prepare_cache_dir, shard_is_complete, shard_name, write_shard
from mmovod.clip.views import ViewTransform, bundle_view_transform, make_views

log = logging.getLogger(__name__)


class CacheRowDataset(Dataset):
    """Item r: row r of the plan as `(r, views (V, 3, S, S) float32 or None, failure (path, reason) or None)`."""

    def __init__(self, classes: list[SourceClass], plan: CachePlan, roots: Mapping[str, Path], context: float,
                 transform: ViewTransform, views: int, seed: int):
        self.classes = classes
        self.offsets = np.asarray(plan.class_offsets)
        self.roots = dict(roots)
        self.context = context
        self.transform = transform
        self.views = views
        self.seed = seed

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, row: int) -> tuple[int, torch.Tensor | None, tuple[str, str] | None]:
        c = int(np.searchsorted(self.offsets, row, side="right")) - 1
        e = row - int(self.offsets[c])
        try:
            crop = load_exemplar_crop(self.classes[c].records[e], self.roots, self.context)
        except BadImageError as exc:
            return row, None, (exc.path, exc.reason)
        return row, make_views(crop, self.transform, self.seed, c, e, self.views), None


def _collate(items: list) -> tuple[list[int], list[torch.Tensor], list[tuple[str, str]]]:
    return [r for r, _, _ in items], [v for _, v, _ in items if v is not None], [f for _, _, f in items if f is not None]


@torch.inference_mode()
def encode_rows(bundle: Any, dataset: CacheRowDataset, rows: range, batch_size: int, workers: int) -> np.ndarray:
    """float32 `(len(rows), views, D)` raw CLIP image embeddings of `rows`, encoded in batches of
    `batch_size` views starting at `rows.start`. An unreadable image raises BadImageError naming it."""
    per_batch = max(1, batch_size // dataset.views)
    loader = DataLoader(torch.utils.data.Subset(dataset, list(rows)), batch_size=per_batch, shuffle=False,
                        num_workers=workers, collate_fn=_collate, pin_memory=bundle.device.type == "cuda")
    out = np.empty((len(rows), dataset.views, bundle.embed_dim), dtype=np.float32)
    filled = 0
    for batch_rows, views, failures in loader:
        if failures:
            path, reason = failures[0]
            raise BadImageError(path, reason)
        x = torch.cat(views).to(bundle.device, non_blocking=True)
        with bundle.autocast():
            emb = bundle.model.encode_image(x).float().cpu().numpy()
        out[filled:filled + len(batch_rows)] = emb.reshape(len(batch_rows), dataset.views, -1)
        filled += len(batch_rows)
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
    bundle: Any,
    classes: list[SourceClass],
    out: str | Path,
    roots: Mapping[str, Path],
    ctx: DistContext,
    *,
    views: int,
    tta_transform: ViewTransform,
    tta: bool,
    seed: int,
    context: float,
    shard_size: int,
    batch_size: int,
    workers: int,
    source_kind: str,
    progress: bool = True,
) -> CacheRun:
    """Plan the cache of `classes`, then encode this rank's unfinished shards (rank r: shards r, r+W, ...).

    Rank 0 writes the index; every rank checks that an existing index describes the same plan and
    settings (CLIP model, views, TTA, seed, items) before encoding anything.
    """
    plan = CachePlan.from_classes([ClassItems(c.name, [item_id(r) for r in c.records]) for c in classes], shard_size)
    extra = {"source": source_kind, "tta": tta, "seed": seed, "context": context}
    meta = CacheMeta(bundle.describe(), bundle.embed_dim, views, extra)
    failure: InputError | None = None
    if ctx.is_main:
        try:
            prepare_cache_dir(out, plan, meta, write=True)
        except InputError as exc:
            failure = exc
    if not all_agree(ctx, failure is None):
        raise failure or InputError(f"{out}: rank 0 could not prepare the cache (see its error)")
    root = prepare_cache_dir(out, plan, meta, write=False)
    dataset = CacheRowDataset(classes, plan, roots, context, tta_transform, views, seed)
    mine = list(range(ctx.rank, plan.num_shards, ctx.world_size))
    encoded = skipped = 0
    bar = tqdm(total=sum(len(plan.shard_rows(s)) for s in mine), unit="image", desc=f"cache rank {ctx.rank}",
               disable=not progress)
    try:
        for shard in mine:
            rows = plan.shard_rows(shard)
            if shard_is_complete(root / shard_name(shard), len(rows), views, bundle.embed_dim):
                skipped += 1
                bar.update(len(rows))
                continue
            write_shard(root, shard, encode_rows(bundle, dataset, rows, batch_size, workers))
            encoded += 1
            bar.update(len(rows))
    finally:
        bar.close()
    barrier(ctx)
    log.info("rank %d: %d shards encoded, %d already finished", ctx.rank, encoded, skipped)
    return CacheRun(root, plan.num_rows, plan.num_shards, encoded, skipped, len(classes))


def cache_clip_features(
    out: str | Path,
    *,
    image_root: str | None,
    exemplar_dict: str | None,
    roots: Mapping[str, Path],
    classes_file: str | None = None,
    exclude_file: str | None = None,
    lvis_ann: str | None = None,
    min_images: int = 2,
    strict: bool = False,
    views: int = 1,
    tta: bool = False,
    seed: int = 0,
    context: float,
    shard_size: int,
    batch_size: int,
    workers: int,
    clip_model: str,
    pretrained: str | None,
    device: str | None,
) -> CacheRun | None:
    """Select the classes of a folder tree (`image_root`) or an exemplar dictionary (`exemplar_dict`),
    join the torchrun group (if any), load CLIP's image tower and `cache_features` them into `out`.

    `classes_file` keeps, `exclude_file` drops, `lvis_ann` drops the LVIS-rare classes (wnids of a
    tree, synsets of a dictionary); `roots` are the image roots of exemplar records. Returns the run
    on the main rank, None on the others.
    """
    check_output_dir(out)
    if views < 1 or (views > 1 and not tta):
        raise InputError(f"--views {views}: need at least 1, and more than 1 only with --tta (plain views are identical)")
    if batch_size < 1 or workers < 0 or min_images < 1:
        raise InputError("--batch-size and --min-images must be positive, --nw not negative")
    if seed < 0:
        raise InputError(f"--seed must not be negative, got {seed}")
    if not 0 <= context < float("inf"):
        raise InputError(f"--context must be a finite number >= 0, got {context}")
    keep = read_name_list(classes_file) if classes_file else None
    exclude = read_name_list(exclude_file) if exclude_file else set()
    if image_root:
        classes = folder_tree_classes(image_root)
        roots = {**roots, TREE_DATASET: Path(image_root)}
        where, kind = image_root, "folder-tree"
        if lvis_ann:
            exclude |= lvis_rare_wnids(lvis_ann)
    else:
        classes = exemplar_dict_classes(exemplar_dict)
        where, kind = exemplar_dict, "exemplar-dict"
        if lvis_ann:
            exclude |= lvis_rare_synsets(lvis_ann)
    classes = select_classes(classes, keep, exclude, min_images, strict, where)
    ctx = init_distributed(device)
    try:
        bundle = load_clip(clip_model, pretrained, str(ctx.device), tower="image")
        result = cache_features(
            bundle, classes, out, roots, ctx, views=views, tta_transform=bundle_view_transform(bundle, tta),
            tta=tta, seed=seed, context=context, shard_size=shard_size, batch_size=batch_size,
            workers=workers, source_kind=kind, progress=ctx.is_main,
        )
    finally:
        shutdown(ctx)
    return result if ctx.is_main else None
