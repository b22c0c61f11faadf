"""Encode exemplar views for several view settings in one pass: each image decoded once, each distinct view encoded once.

The averaged classifier (context 0.4, TTA views) and the aggregated one (context 0.2, TTA or plain
views) normally need two passes over the images, one per tool. Here a DataLoader worker opens each
exemplar's image once and cuts the crop of every `ViewSpec`; view v of a crop is
`make_view(crop, transform, seed, class, exemplar, v)` exactly as in `mmovod.clip.image_encoding`,
so two settings whose crops coincide (whole images, for which the context does not matter, or boxes
that fill their image) and whose views are both TTA (or both plain) share their first views: those
are made and encoded once and used by both. As in `mmovod.classifiers.vision.encode_exemplar_views`,
a setting without TTA has one (plain) view per exemplar whatever its `num_views`. The results equal
separate passes with each setting (up to float rounding of batched matmuls); only the work differs.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from mmovod.clip.crops import BadImageError, exemplar_crop_box, open_image
from mmovod.clip.image_encoding import ExemplarEmbeddings
from mmovod.clip.specs import ViewSpec
from mmovod.clip.views import ViewTransform, bundle_view_transform, make_view
from mmovod.readers.image_roots import record_image_path

log = logging.getLogger(__name__)

Records = Sequence[Sequence[Mapping[str, Any]]]


class SharedViewDataset(Dataset):
    """Item i: exemplar i in (class, exemplar) order, as `(i, views (U, 3, S, S), slots, failure)`.

    `views` holds the U distinct views the settings need; `slots[s][v]` is the row of view v of
    setting s. Classes may have no exemplars (they contribute no items). `failure` is
    `(path, reason)` for an unreadable image (then views and slots are None).
    """

    def __init__(self, exemplars: Records, roots: Mapping[str, Path], specs: Sequence[ViewSpec],
                 transforms: Sequence[ViewTransform], seed: int):
        self.exemplars = exemplars
        self.roots = dict(roots)
        self.specs = list(specs)
        self.transforms = list(transforms)
        self.seed = seed
        self.index = [(c, e) for c, records in enumerate(exemplars) for e in range(len(records))]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, list[list[int]] | None, tuple[str, str] | None]:
        c, e = self.index[i]
        record = self.exemplars[c][e]
        try:
            image = open_image(record_image_path(record, self.roots))
        except BadImageError as exc:
            return i, None, None, (exc.path, exc.reason)
        rows: dict[tuple, int] = {}
        views: list[torch.Tensor] = []
        crops: dict[tuple[int, int, int, int], Any] = {}
        slots = []
        for spec, transform in zip(self.specs, self.transforms):
            box = exemplar_crop_box(record, image.width, image.height, spec.context)
            spec_rows = []
            for v in range(views_per_exemplar(spec)):
                key = (box, spec.tta, v)
                if key not in rows:
                    if box not in crops:
                        crops[box] = image.crop(box)
                    rows[key] = len(views)
                    views.append(make_view(crops[box], transform, self.seed, c, e, v))
                spec_rows.append(rows[key])
            slots.append(spec_rows)
        return i, torch.stack(views), slots, None


def views_per_exemplar(spec: ViewSpec) -> int:
    """`spec.num_views` TTA views, or the one plain view."""
    return spec.num_views if spec.tta else 1


def _single(items: list) -> Any:
    return items[0]


def encode_view_sets(bundle: Any, exemplars: Records, specs: Sequence[ViewSpec], *, batch_size: int,
                     roots: Mapping[str, Path] | None = None, progress: bool = True) -> list[ExemplarEmbeddings]:
    """Raw CLIP image embeddings of every exemplar under each of `specs`, from one pass over the images.

    `bundle` is a `ClipBundle` (only its image tower is used). The specs must agree on `seed`,
    `workers` and `skip_bad` (the first one's are used). Returns one `ExemplarEmbeddings` per spec,
    `(E, views_per_exemplar(spec), D)` float32 over the E exemplars in (class, exemplar) order; classes
    without exemplars have no rows. An unreadable image raises BadImageError unless `skip_bad`,
    which records it in `skipped` and leaves its rows invalid (a class may end up with none).
    """
    first = specs[0]
    if any((s.seed, s.workers, s.skip_bad) != (first.seed, first.workers, first.skip_bad) for s in specs):
        raise ValueError("view specs encoded together must share seed, workers and skip_bad")
    transforms = [bundle_view_transform(bundle, s.tta) for s in specs]
    dataset = SharedViewDataset(exemplars, roots or {}, specs, transforms, first.seed)
    per_item = sum(views_per_exemplar(s) for s in specs)
    prefetch = {"prefetch_factor": max(2, -(-batch_size // (per_item * first.workers)))} if first.workers else {}
    loader = DataLoader(dataset, batch_size=1, shuffle=False, num_workers=first.workers, collate_fn=_single,
                        pin_memory=bundle.device.type == "cuda", **prefetch)
    outs = [torch.zeros(len(dataset), views_per_exemplar(s), bundle.embed_dim) for s in specs]
    valid = torch.zeros(len(dataset), dtype=torch.bool)
    skipped: list[dict[str, Any]] = []
    pending: list[tuple[int, torch.Tensor, list[list[int]]]] = []
    encoded_views = 0

    def encode_pending() -> None:
        views = torch.cat([v for _, v, _ in pending])
        chunks = []
        for chunk in views.split(batch_size):
            with bundle.autocast():
                chunks.append(bundle.model.encode_image(chunk.to(bundle.device, non_blocking=True)).float().cpu())
        embeddings = torch.cat(chunks)
        start = 0
        for i, item_views, slots in pending:
            for out, rows in zip(outs, slots):
                out[i] = embeddings[[start + r for r in rows]]
            valid[i] = True
            start += len(item_views)
        pending.clear()

    with torch.inference_mode(), tqdm(total=len(dataset), unit="exemplar", disable=not progress) as bar:
        for i, views, slots, failure in loader:
            if failure is not None:
                path, reason = failure
                if not first.skip_bad:
                    raise BadImageError(path, reason + " (pass --skip-bad to skip unreadable images)")
                c, e = dataset.index[i]
                log.warning("skipping class %d exemplar %d: %s: %s", c, e, path, reason)
                skipped.append({"class": c, "exemplar": e, "path": path, "reason": reason})
            else:
                pending.append((i, views, slots))
                encoded_views += len(views)
                if sum(len(v) for _, v, _ in pending) >= batch_size:
                    encode_pending()
            bar.update()
        if pending:
            encode_pending()
    log.info("encoded %d distinct views for %d view settings of %d exemplars (%d without sharing)",
             encoded_views, len(specs), len(dataset), (len(dataset) - len(skipped)) * per_item)
    class_of = torch.tensor([c for c, _ in dataset.index], dtype=torch.long)
    return [ExemplarEmbeddings(out, valid.clone(), class_of, len(exemplars), list(skipped)) for out in outs]
