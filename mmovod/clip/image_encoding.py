"""Encode exemplar views with CLIP's image tower, batched across classes.

DataLoader workers open each exemplar's image once, crop it and make its views (`mmovod.clip.views`), one
exemplar per item; the main process collects views into batches of `batch_size`, whatever class
they belong to, and encodes them while the workers prepare the next batch. A view
depends only on (seed, class index, exemplar index, view index), so the embeddings do not depend on
batch size, worker count or processing order.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from mmovod.clip.crops import BadImageError, load_exemplar_crop
from mmovod.io.errors import InputError
from mmovod.readers.exemplar_list import ExemplarList
from mmovod.clip.views import ViewTransform, make_views

log = logging.getLogger(__name__)


class ExemplarViewDataset(Dataset):
    """Item i: exemplar i in (class, exemplar) order, as `(i, views (V, 3, S, S) float32 or None, failure)`.

    The image is opened and cropped once per exemplar; `failure` is `(path, reason)` when it cannot be
    read (then views is None), so the main process decides whether to stop or skip.
    """

    def __init__(self, exemplars: ExemplarList, roots: Mapping[str, Path], context: float,
                 transform: ViewTransform, num_views: int, seed: int):
        self.exemplars = exemplars
        self.roots = dict(roots)
        self.context = context
        self.transform = transform
        self.num_views = num_views
        self.seed = seed
        self.index = [(c, e) for c, records in enumerate(exemplars) for e in range(len(records))]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, tuple[str, str] | None]:
        c, e = self.index[i]
        try:
            crop = load_exemplar_crop(self.exemplars[c][e], self.roots, self.context)
        except BadImageError as exc:
            return i, None, (exc.path, exc.reason)
        return i, make_views(crop, self.transform, self.seed, c, e, self.num_views), None


def _collate(items: list) -> tuple[list[int], torch.Tensor | None, list[tuple[int, tuple[str, str]]]]:
    good = [(i, views) for i, views, _ in items if views is not None]
    bad = [(i, failure) for i, _, failure in items if failure is not None]
    views = torch.cat([v for _, v in good]) if good else None
    return [i for i, _ in good], views, bad


@dataclass
class ExemplarEmbeddings:
    """Raw (not normalised) CLIP image embeddings of every view of every exemplar.

    `embeddings`: `(E, V, D)` float32 over the E exemplars in (class, exemplar) order; `valid`: `(E,)`
    bool, False for skipped exemplars (their rows are zero); `class_of`: `(E,)` long class index.
    """

    embeddings: torch.Tensor
    valid: torch.Tensor
    class_of: torch.Tensor
    num_classes: int
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def class_mean(self) -> torch.Tensor:
        """`(C, D)` float32: per class, the mean over its valid exemplars' views."""
        e, v, d = self.embeddings.shape
        sums = torch.zeros(self.num_classes, d, dtype=torch.float64)
        sums.index_add_(0, self.class_of, self.embeddings.double().sum(1) * self.valid[:, None])
        counts = torch.zeros(self.num_classes, dtype=torch.float64).index_add_(0, self.class_of, self.valid.double())
        return (sums / (counts[:, None] * v)).float()

    def padded_sets(self, repeat: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """Per class, the views of its valid exemplars as one set: `(C, N, D)` float32 and `(C, N)` bool mask.

        Each exemplar contributes its V views repeated `repeat` times (exemplar-major order), so a
        class with k valid exemplars has k * V * repeat tokens; shorter sets are zero-padded.
        """
        views = self.embeddings.repeat_interleave(repeat, dim=1) if repeat > 1 else self.embeddings
        per_exemplar = views.shape[1]
        counts = torch.bincount(self.class_of[self.valid], minlength=self.num_classes)
        n = int(counts.max()) * per_exemplar
        sets = torch.zeros(self.num_classes, n, views.shape[2])
        mask = torch.zeros(self.num_classes, n, dtype=torch.bool)
        slot = torch.zeros(self.num_classes, dtype=torch.long)
        for i in torch.nonzero(self.valid).flatten().tolist():
            c = int(self.class_of[i])
            start = int(slot[c]) * per_exemplar
            sets[c, start:start + per_exemplar] = views[i]
            mask[c, start:start + per_exemplar] = True
            slot[c] += 1
        return sets, mask


def encode_exemplars(bundle: Any, exemplars: ExemplarList, roots: Mapping[str, Path], *, context: float,
                     transform: ViewTransform, num_views: int, seed: int, batch_size: int, num_workers: int,
                     skip_bad: bool = False, progress: bool = True) -> ExemplarEmbeddings:
    """Encode `num_views` views (made by `transform`, see `mmovod.clip.views`) of every exemplar.

    `bundle` is a `ClipBundle`; only its image tower is used (free the text tower first to save memory).
    Views are encoded `batch_size` at a time across classes under `torch.inference_mode()` and fp16
    autocast on CUDA; embeddings come back as float32 on the CPU. An unreadable image raises
    BadImageError (one line naming it) unless `skip_bad`, which drops it, records it in `skipped`
    and raises InputError only when a class is left without any exemplar.
    """
    if batch_size < 1 or num_views < 1 or num_workers < 0:
        raise InputError("batch size and number of views must be positive, workers non-negative")
    dataset = ExemplarViewDataset(exemplars, roots, context, transform, num_views, seed)
    # One exemplar per item keeps every worker busy; each worker prefetches enough items to fill the
    # next encoding batch while the main process encodes the current one.
    prefetch = {"prefetch_factor": max(2, -(-batch_size // (num_views * num_workers)))} if num_workers else {}
    loader = DataLoader(dataset, batch_size=1, shuffle=False, num_workers=num_workers, collate_fn=_collate,
                        pin_memory=bundle.device.type == "cuda", **prefetch)
    out = torch.zeros(len(dataset), num_views, bundle.embed_dim)
    valid = torch.zeros(len(dataset), dtype=torch.bool)
    skipped: list[dict[str, Any]] = []
    pending: list[tuple[list[int], torch.Tensor]] = []

    def encode_pending() -> None:
        indices = [i for ids, _ in pending for i in ids]
        views = torch.cat([v for _, v in pending])
        embeddings = []
        for chunk in views.split(batch_size):
            with bundle.autocast():
                embeddings.append(bundle.model.encode_image(chunk.to(bundle.device, non_blocking=True)).float().cpu())
        index = torch.tensor(indices)
        out[index] = torch.cat(embeddings).reshape(len(indices), num_views, -1)
        valid[index] = True
        pending.clear()

    with torch.inference_mode(), tqdm(total=len(dataset), unit="exemplar", disable=not progress) as bar:
        for indices, views, bad in loader:
            for i, (path, reason) in bad:
                if not skip_bad:
                    raise BadImageError(path, reason + " (pass --skip-bad to skip unreadable images)")
                c, e = dataset.index[i]
                log.warning("skipping class %d exemplar %d: %s: %s", c, e, path, reason)
                skipped.append({"class": c, "exemplar": e, "path": path, "reason": reason})
            if views is not None:
                pending.append((indices, views))
                if sum(len(v) for _, v in pending) >= batch_size:
                    encode_pending()
            bar.update(len(indices) + len(bad))
        if pending:
            encode_pending()
    class_of = torch.tensor([c for c, _ in dataset.index], dtype=torch.long)
    empty = sorted(set(range(len(exemplars))) - set(class_of[valid].tolist()))
    if empty:
        raise InputError(f"{len(empty)} classes have no readable exemplar left (first: class {empty[0]}, "
                         f"{exemplars[empty[0]][0].get('synset', 'no synset')})")
    if skipped:
        log.warning("skipped %d unreadable exemplar images", len(skipped))
    return ExemplarEmbeddings(out, valid, class_of, len(exemplars), skipped)
