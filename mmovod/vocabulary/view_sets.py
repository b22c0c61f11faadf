"""Encode exemplar views for several view settings, sharing the work where the settings make the same views.

The averaged classifier (context 0.4) and the aggregated one (context 0.2) normally need one pass
over the images each. Both go through the one image-encoding pipeline
(`mmovod.clip.image_encoding.encode_items`); view v of an exemplar depends only on its crop and
(seed, class, exemplar, v), so two settings with the same views (TTA or not, seed and view order)
whose crops coincide for every exemplar (the same context, or only whole images, where the context
does not matter) are encoded once: the setting with more views is encoded and the other takes its
first views. Otherwise each setting is its own pass. Classes may have no exemplars.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Mapping, Sequence


from mmovod.readers.exemplar_records import record_box
from mmovod.clip.factory import ClipBundle
from mmovod.clip.image_encoding import ExemplarEmbeddings, encode_exemplars
from mmovod.clip.specs import ViewSpec

log = logging.getLogger(__name__)

Records = Sequence[Sequence[Mapping[str, Any]]]


def views_per_exemplar(spec: ViewSpec) -> int:
    """`spec.num_views` TTA views, or the one plain view."""
    return spec.num_views if spec.tta else 1


def same_views(a: ViewSpec, b: ViewSpec, exemplars: Records) -> bool:
    """Whether view v of every exemplar is the same image under `a` and `b` (for v below both counts)."""
    if (a.tta, a.seed, a.order) != (b.tta, b.seed, b.order):
        return False
    return a.context == b.context or all(record_box(r) is None for records in exemplars for r in records)


def encode_view_sets(bundle: ClipBundle, exemplars: Records, specs: Sequence[ViewSpec], *,
                     batch_size: int | None = None, roots: Mapping[str, Path] | None = None,
                     progress: bool = True) -> list[ExemplarEmbeddings]:
    """Raw CLIP image embeddings of every exemplar under each of `specs`, one `ExemplarEmbeddings` per
    spec (`(E, views_per_exemplar(spec), D)` float32 over the E exemplars in (class, exemplar) order);
    settings with the same views share one pass (see the module docstring). An unreadable image raises
    BadImageError unless the spec's `skip_bad`, which records it and leaves its rows invalid."""
    roots = roots or {}
    order = sorted(range(len(specs)), key=lambda i: -views_per_exemplar(specs[i]))
    done: list[tuple[ViewSpec, ExemplarEmbeddings]] = []
    results: dict[int, ExemplarEmbeddings] = {}
    for i in order:
        spec = specs[i]
        shared = next((enc for other, enc in done
                       if other.skip_bad == spec.skip_bad and same_views(spec, other, exemplars)), None)
        if shared is None:
            shared = encode_exemplars(bundle, exemplars, roots, spec, batch_size=batch_size, progress=progress,
                                      allow_empty_classes=True)
            done.append((spec, shared))
        results[i] = dataclasses.replace(shared, embeddings=shared.embeddings[:, :views_per_exemplar(spec)])
    count = sum(len(records) for records in exemplars)
    log.info("encoded %d distinct views for %d view settings of %d exemplars (%d without sharing)",
             count * sum(views_per_exemplar(s) for s, _ in done), len(specs), count,
             count * sum(views_per_exemplar(s) for s in specs))
    return [results[i] for i in range(len(specs))]
