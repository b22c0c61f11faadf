"""The one image-encoding pipeline: item records -> crops -> views -> batched CLIP image embeddings.

Used by both vision-classifier tools, the aggregator feature cache and classifier evaluation. An item
is (class index, item index, record); `encode_items` returns `(N, V, D)` float32 raw embeddings, a
valid mask and the skipped images, `encode_exemplars` the same for lists of records per class.

- DataLoader workers decode and crop each item's image on the CPU (`mmovod.clip.exemplar_views`). For
  original-order or plain views they also make its uint8 views; fast TTA views are made in the main
  process on the encoding device from the workers' uint8 crops, batched across exemplars: on CUDA the
  GPU, not the CPU, sets the pace, and on the CPU the view ops and the encoder take turns on all
  cores instead of the workers' view making competing with the encoder's threads. Views travel as
  uint8 (a quarter of float32) and are normalised as the model's preprocessing does right before the
  encoder.
- The main process encodes batches of exactly `batch_size` views, in item order, whatever class they
  belong to, under `torch.inference_mode()` (fp16 autocast on CUDA), while the workers prepare the next.
- One error policy: an unreadable image raises BadImageError naming it, or with `skip_bad` is logged
  and listed in `skipped` and its row left invalid (zeros).
- Deterministic: view v of item e of class c depends only on (seed, c, e, v) and the image, never on
  workers or order; batches start at the first item, so the embeddings depend on the items and
  `batch_size` alone (for any worker count).
"""
from __future__ import annotations

import logging
import math
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from mmovod.readers.exemplar_records import BadImageError
from mmovod.clip.exemplar_views import ExemplarInput, ViewPlan, exemplar_input
from mmovod.clip.factory import ClipBundle
from mmovod.clip.specs import ViewSpec
from mmovod.clip.view_ops import Preprocessing, ViewRecipe, flip_and_jitter, resize_boxes
from mmovod.io.errors import InputError, interrupt_held
from mmovod.io.wording import plural
from mmovod.readers.exemplar_list import ExemplarList

log = logging.getLogger(__name__)

Item = tuple[int, int, Mapping[str, Any]]
"""(class index, item index within its class, exemplar record): the unit of encoding."""
IMAGE_BATCH = {"cuda": 256, "cpu": 32}
"""Default views per forward pass by device type: on the CPU a larger batch is no faster and its
activations would outweigh the model (ViT-B/32: about 2.3 MB per view)."""


def image_batch_size(device: torch.device) -> int:
    """The default number of views per forward pass on `device`."""
    return IMAGE_BATCH.get(device.type, IMAGE_BATCH["cuda"])


@dataclass
class EncodedItems:
    """Raw (not normalised) CLIP image embeddings of items' views: `embeddings` `(N, V, D)` float32 on
    the CPU, `valid` `(N,)` bool (False: skipped, zero row), `skipped`: one dict per skipped image
    (class, exemplar, path, reason)."""

    embeddings: torch.Tensor
    valid: torch.Tensor
    skipped: list[dict[str, Any]] = field(default_factory=list)


class ItemDataset(Dataset):
    """Item i: `(i, ExemplarInput or None, failure or None)`; a failure is returned, not raised, so the
    main process applies the error policy (and a worker's error stays one line): `(path, reason)` for
    an unreadable image, `(None, message)` for a record that is not valid."""

    def __init__(self, items: Sequence[Item], roots: Mapping[str, Path], context: float, plan: ViewPlan):
        self.items = list(items)
        self.roots = dict(roots)
        self.context = context
        self.plan = plan

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[int, ExemplarInput | None, tuple[str | None, str] | None]:
        c, e, record = self.items[i]
        try:
            return i, exemplar_input(record, self.roots, self.context, self.plan, c, e), None
        except BadImageError as exc:
            return i, None, (exc.path, exc.reason)
        except InputError as exc:
            return i, None, (None, str(exc))


class _Batcher:
    """Collects uint8 views in item order and encodes them in batches of exactly `batch_size` views into
    `out` (`(N, V, D)`, on the encoding device); deferred crops get their views made on the device,
    `batch_size` views' worth at a time."""

    def __init__(self, bundle: ClipBundle, prep: Preprocessing, out: torch.Tensor, batch_size: int):
        self.bundle, self.prep, self.out, self.batch_size = bundle, prep, out, batch_size
        self.views: list[torch.Tensor] = []
        self.rows: list[torch.Tensor] = []
        self.count = 0
        self.deferred: list[tuple[int, ExemplarInput]] = []
        self.deferred_count = 0

    def add(self, index: int, item: ExemplarInput) -> None:
        if item.views is None:
            self.deferred.append((index, item))
            self.deferred_count += len(item.recipe.boxes)
            if self.deferred_count >= self.batch_size:
                self.make_deferred()
            return
        self._queue(index, item.views.to(self.bundle.device, non_blocking=True))

    def _queue(self, index: int, views: torch.Tensor) -> None:
        v = self.out.shape[1]
        self.views.append(views)
        self.rows.append(torch.arange(index * v, (index + 1) * v))
        self.count += len(views)
        while self.count >= self.batch_size:
            self.encode(self.batch_size)

    def make_deferred(self) -> None:
        """Views of the deferred crops, on the device: resized per crop, flipped and jittered together."""
        if not self.deferred:
            return
        device = self.bundle.device
        resized = torch.cat([resize_boxes(item.crop.to(device, non_blocking=True), item.recipe.boxes, self.prep.size)
                             for _, item in self.deferred])
        views = flip_and_jitter(resized, ViewRecipe.cat([item.recipe for _, item in self.deferred]))
        for (index, _), chunk in zip(self.deferred, views.split([len(item.recipe.boxes) for _, item in self.deferred])):
            self._queue(index, chunk)
        self.deferred, self.deferred_count = [], 0

    def encode(self, n: int) -> None:
        views, rows = torch.cat(self.views), torch.cat(self.rows)
        self.views, self.rows = [views[n:]], [rows[n:]]
        self.count -= n
        with self.bundle.autocast():
            embeddings = self.bundle.model.encode_image(self.prep.normalise(views[:n]))
        self.out.view(-1, self.out.shape[-1])[rows[:n].to(self.out.device)] = embeddings.float()

    def finish(self) -> None:
        self.make_deferred()
        if self.count:
            self.encode(self.count)


def view_plan(bundle: ClipBundle, views: ViewSpec) -> ViewPlan:
    """How `views` are made for `bundle`: one plain view without TTA (all would be the same), fast TTA
    views deferred to the main process (made on the encoding device)."""
    return ViewPlan(Preprocessing.from_preprocess(bundle.preprocess, bundle.image_size),
                    views.num_views if views.tta else 1, views.tta, views.order, views.seed,
                    defer=views.tta and views.order == "fast")


def encode_items(bundle: ClipBundle, items: Sequence[Item], roots: Mapping[str, Path], views: ViewSpec, *,
                 batch_size: int | None = None, progress: bool = True, unit: str = "image") -> EncodedItems:
    """Encode the views of `items` (see the module docstring): `views.num_views` TTA views per item, or
    one plain view without TTA. `bundle` needs only its image tower; `views.workers` DataLoader workers;
    `batch_size` views per forward pass (None: `image_batch_size(bundle.device)`)."""
    batch_size = batch_size or image_batch_size(bundle.device)
    if batch_size < 1:
        raise InputError(f"batch size must be at least 1, found {batch_size}")
    plan = view_plan(bundle, views)
    dataset = ItemDataset(items, roots, views.context, plan)
    # a few items per fetch: a quarter of a batch's views, so the per-message cost is shared and every
    # worker stays busy; each prefetches enough fetches to fill the next batch
    per_fetch = max(1, batch_size // (4 * plan.num_views))
    prefetch = ({"prefetch_factor": max(2, math.ceil(batch_size / (plan.num_views * per_fetch * views.workers)))}
                if views.workers else {})
    loader = DataLoader(dataset, batch_size=per_fetch, shuffle=False, num_workers=views.workers, collate_fn=list,
                        pin_memory=bundle.device.type == "cuda", **prefetch)
    out = torch.zeros(len(dataset), plan.num_views, bundle.embed_dim, device=bundle.device)
    valid = torch.zeros(len(dataset), dtype=torch.bool)
    skipped: list[dict[str, Any]] = []
    batcher = _Batcher(bundle, plan.prep, out, batch_size)
    with interrupt_held():  # a Ctrl-C while the workers start would leave a half-built iterator behind
        fetches = iter(loader)
    fetched = (entry for fetch in fetches for entry in fetch)
    del fetches  # the generator is its only owner: closing it stops the workers
    # closing the fetches on the way out stops the workers now, not whenever the error's traceback is freed
    with closing(fetched), torch.inference_mode(), tqdm(total=len(dataset), unit=unit, disable=not progress) as bar:
        for i, item, failure in fetched:
            if failure is not None:
                path, reason = failure
                if path is None:
                    raise InputError(reason)
                if not views.skip_bad:
                    raise BadImageError(path, reason)
                c, e, _ = dataset.items[i]
                log.warning("skipping %s: %s", path, reason)
                skipped.append({"class": c, "exemplar": e, "path": path, "reason": reason})
            else:
                batcher.add(i, item)
                valid[i] = True
            bar.update(1)
        batcher.finish()
    return EncodedItems(out.cpu(), valid, skipped)


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


def encode_exemplars(bundle: ClipBundle, exemplars: ExemplarList, roots: Mapping[str, Path], views: ViewSpec, *,
                     batch_size: int | None = None, progress: bool = True,
                     allow_empty_classes: bool = False) -> ExemplarEmbeddings:
    """`encode_items` over lists of exemplar records per class, in (class, exemplar) order.

    An unreadable image raises BadImageError (one line naming it) unless `views.skip_bad`, which drops
    it, records it in `skipped` and raises InputError when a class is left without any exemplar
    (unless `allow_empty_classes`: such classes simply have no valid rows).
    """
    items = [(c, e, record) for c, records in enumerate(exemplars) for e, record in enumerate(records)]
    encoded = encode_items(bundle, items, roots, views, batch_size=batch_size, progress=progress, unit="exemplar")
    class_of = torch.tensor([c for c, _, _ in items], dtype=torch.long)
    empty = sorted(set(range(len(exemplars))) - set(class_of[encoded.valid].tolist()))
    if empty and not allow_empty_classes:
        first = exemplars[empty[0]][0]
        name = first.get("synset") or first.get("category_id") or first.get("file_name")
        raise InputError(f"{plural(len(empty), 'class has', 'classes have')} no readable exemplar left; the first is "
                         f"the class of {name}")
    if encoded.skipped:
        log.warning("skipped %s: %s%s", plural(len(encoded.skipped), "unreadable exemplar image", "unreadable exemplar images"),
                    ", ".join(f"{s['path']}: {s['reason']}" for s in encoded.skipped[:5]),
                    " ..." if len(encoded.skipped) > 5 else "")
    return ExemplarEmbeddings(encoded.embeddings, encoded.valid, class_of, len(exemplars), encoded.skipped)
