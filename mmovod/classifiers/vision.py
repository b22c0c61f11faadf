"""Image-exemplar classifiers: one row per class from its K exemplars x num_views views.

- `average_classifier`: the mean of the raw CLIP image embeddings of the views, float32 `(C, D)`
  (what `get_exemplars_tta.py` writes; context 0.4, TTA always on).
- `aggregated_classifier`: the trained visual aggregator applied to the set of raw view embeddings,
  float16 `(C, 512)` (what `generate_vision_classifier_agg.py` writes; context 0.2, TTA optional), in
  CLIP's space when the checkpoint was trained for it (`mmovod.aggregator.objective`), else in the
  aggregator's own space (the authors' released weights).
Neither is L2-normalised. Both start from `encode_exemplar_views` (the views' embeddings, in memory);
`write_average_classifier` and `write_aggregated_classifier` are the two tools' whole steps.
`held_out_average_rows` and `held_out_aggregated_rows` rebuild, for the leave-one-out judge
(`mmovod.evaluation.leave_one_out`), a class's row without one of its exemplars (the kinds table's `held_out`).
"""
from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from mmovod.aggregator.model import VisualAggregator
from mmovod.classifiers.kinds import KINDS
from mmovod.classifiers.recipes import AGGREGATOR_VIEWS, AVERAGE_VIEWS
from mmovod.classifiers.sidecar import check_classifier_path, make_sidecar, save_classifier
from mmovod.clip.factory import ClipBundle
from mmovod.clip.image_encoding import ExemplarEmbeddings, encode_exemplars
from mmovod.clip.specs import ClipSpec, ViewSpec, as_bundle
from mmovod.io.errors import InputError
from mmovod.readers.exemplar_list import ExemplarList, check_images_exist, class_category_ids, load_exemplar_list
from mmovod.readers.image_roots import default_image_roots

log = logging.getLogger(__name__)

AGGREGATOR_CLASS_BATCH = 128
HELD_OUT_BATCH = 256


def encode_exemplar_views(exemplars: ExemplarList, clip: ClipBundle, views: ViewSpec,
                          roots: Mapping[str, Path] | None = None, *, batch_size: int | None = None,
                          progress: bool = True) -> ExemplarEmbeddings:
    """Raw CLIP image embeddings of every view of every exemplar (see `mmovod.clip.image_encoding`).

    Without TTA every view would be the same plain crop, so it is encoded once (one view per exemplar).
    `roots` maps a record's `dataset` to its image folder (default: the guide's `datasets/...` folders).
    """
    return encode_exemplars(clip, exemplars, roots or default_image_roots(), views,
                            batch_size=batch_size, progress=progress)


def average_classifier(encoded: ExemplarEmbeddings) -> np.ndarray:
    """`(C, D)` float32: per class, the mean raw CLIP embedding of its exemplars' views."""
    return encoded.class_mean().numpy()


def aggregate_sets(aggregator: VisualAggregator, sets: torch.Tensor, mask: torch.Tensor, device: torch.device,
                   class_batch: int = AGGREGATOR_CLASS_BATCH) -> torch.Tensor:
    """`(C, N, D)` padded sets + `(C, N)` mask -> `(C, D)` float32, `class_batch` classes per forward pass."""
    aggregator = aggregator.to(device)
    out = []
    with torch.inference_mode():
        for x, valid in zip(sets.split(class_batch), mask.split(class_batch)):
            out.append(aggregator(x.to(device), valid.to(device)).float().cpu())
    return torch.cat(out)


def check_aggregator_fits(aggregator: VisualAggregator, clip_model: str, embed_dim: int, where: str | None = None) -> None:
    """InputError (naming `where`, e.g. the checkpoint) when the aggregator's input size is not the CLIP
    model's embedding size."""
    if aggregator.dim != embed_dim:
        raise InputError(f"{where + ': ' if where else ''}the aggregator takes {aggregator.dim}-d embeddings but "
                         f"{clip_model} gives {embed_dim}-d ones (use the CLIP the aggregator was trained with)")


def aggregated_classifier(encoded: ExemplarEmbeddings, aggregator: VisualAggregator, num_views: int,
                          device: torch.device | str = "cpu") -> np.ndarray:
    """`(C, D)` float16: the aggregator over each class's K x `num_views` raw view embeddings.

    When `encoded` holds one plain view per exemplar (no TTA), that embedding is repeated `num_views`
    times: the same set the original builds by re-encoding the plain crop.
    """
    repeat = num_views // encoded.embeddings.shape[1]
    sets, mask = encoded.padded_sets(repeat=max(1, repeat))
    return aggregate_sets(aggregator, sets, mask, torch.device(device)).half().numpy()


def held_out_average_rows(encoded: ExemplarEmbeddings, held_out: np.ndarray) -> np.ndarray:
    """`(N, D)` float64: for each held-out exemplar, its class's mean view embedding without its own views."""
    views = encoded.embeddings.double().numpy()
    valid = encoded.valid.numpy()
    class_of = encoded.class_of.numpy()
    per_exemplar = views.sum(axis=1) * valid[:, None]
    sums = np.zeros((encoded.num_classes, views.shape[2]))
    np.add.at(sums, class_of, per_exemplar)
    counts = np.bincount(class_of[valid], minlength=encoded.num_classes)
    c = class_of[held_out]
    return (sums[c] - per_exemplar[held_out]) / ((counts[c] - 1) * views.shape[1])[:, None]


@torch.inference_mode()
def held_out_aggregated_rows(encoded: ExemplarEmbeddings, held_out: np.ndarray, aggregator: VisualAggregator,
                             num_views: int, device: torch.device | str = "cpu") -> np.ndarray:
    """`(N, D)` float64: for each held-out exemplar, the aggregator over its class's other exemplars' views
    (each exemplar's views repeated as `aggregated_classifier` repeats them)."""
    repeat = max(1, num_views // encoded.embeddings.shape[1])
    views = encoded.embeddings.repeat_interleave(repeat, dim=1) if repeat > 1 else encoded.embeddings
    per = views.shape[1]
    valid, class_of = encoded.valid.numpy(), encoded.class_of.numpy()
    members = {int(c): np.flatnonzero(valid & (class_of == c)) for c in np.unique(class_of[held_out])}
    size = (max(len(m) for m in members.values()) - 1) * per
    model = aggregator.to(device).eval()
    out = []
    for start in range(0, len(held_out), HELD_OUT_BATCH):
        batch = held_out[start:start + HELD_OUT_BATCH]
        sets = torch.zeros(len(batch), size, views.shape[2])
        mask = torch.zeros(len(batch), size, dtype=torch.bool)
        for b, e in enumerate(batch.tolist()):
            others = [i for i in members[int(class_of[e])] if i != e]
            sets[b, :len(others) * per] = views[others].reshape(-1, views.shape[2])
            mask[b, :len(others) * per] = True
        out.append(model(sets.to(device), mask.to(device)).double().cpu().numpy())
    return np.concatenate(out)


def exemplar_classifier(exemplars: ExemplarList, clip: ClipSpec | ClipBundle, views: ViewSpec = AVERAGE_VIEWS,
                        roots: Mapping[str, Path] | None = None, aggregator: VisualAggregator | None = None,
                        progress: bool = False) -> np.ndarray:
    """The image-exemplar classifier of `exemplars` (a list over classes of exemplar records), in memory:
    the averaged one, or the aggregated one when `aggregator` is given (pass `AGGREGATOR_VIEWS`-like views)."""
    bundle, batch_size = as_bundle(clip, tower="image")
    if aggregator is not None:
        check_aggregator_fits(aggregator, bundle.model_name, bundle.embed_dim)
    encoded = encode_exemplar_views(exemplars, bundle, views, roots, batch_size=batch_size, progress=progress)
    if aggregator is None:
        return average_classifier(encoded)
    return aggregated_classifier(encoded, aggregator, views.num_views, bundle.device)


def vision_details(source: str, roots: Mapping[str, Path], views: ViewSpec, encoded: ExemplarEmbeddings,
                   **extra: Any) -> dict[str, Any]:
    """The sidecar details shared by both vision classifiers."""
    counts = torch.bincount(encoded.class_of[encoded.valid], minlength=encoded.num_classes)
    return {
        "exemplar_list": source,
        "image_roots": {name: str(path) for name, path in roots.items()},
        "exemplars_per_class": {"min": int(counts.min()), "max": int(counts.max())},
        **views.provenance(),
        **extra,
        "skipped_images": encoded.skipped,
    }


@dataclass(frozen=True)
class ClassifierSummary:
    """What a vision-classifier step wrote; `str()` is the line the tools print."""
    classes: int
    dim: int
    dtype: str
    skipped: int
    path: str

    def __str__(self) -> str:
        return (f"{self.classes} classes x {self.dim} ({self.dtype}), "
                f"{self.skipped} images skipped; wrote {self.path}")


def _summary(classifier: np.ndarray, encoded: ExemplarEmbeddings, path: str | os.PathLike) -> ClassifierSummary:
    return ClassifierSummary(classifier.shape[0], classifier.shape[1], str(classifier.dtype), len(encoded.skipped),
                             str(path))


def _exemplars_and_image_tower(exemplar_list: str | os.PathLike, clip: ClipSpec, roots: Mapping[str, Path],
                               skip_bad: bool) -> tuple[ExemplarList, ClipBundle]:
    """Read the exemplar list and check every image exists, then load CLIP's image tower."""
    exemplars = load_exemplar_list(exemplar_list)
    check_images_exist(exemplars, roots, skip_bad)
    return exemplars, clip.load(tower="image")


def write_average_classifier(exemplar_list: str | os.PathLike, out_path: str | os.PathLike, clip: ClipSpec,
                             roots: Mapping[str, Path], views: ViewSpec = AVERAGE_VIEWS, *,
                             command: str | None = None) -> ClassifierSummary:
    """Write the averaged classifier of `exemplar_list` (float32 `(C, D)`) to `out_path` with its sidecar."""
    check_classifier_path(out_path, [exemplar_list])
    views = dataclasses.replace(views, tta=True)
    exemplars, bundle = _exemplars_and_image_tower(exemplar_list, clip, roots, views.skip_bad)
    encoded = encode_exemplar_views(exemplars, bundle, views, roots, batch_size=clip.batch_size)
    classifier = average_classifier(encoded)
    save_classifier(out_path, classifier, make_sidecar(
        classifier, "vision-average", bundle.describe(), category_ids=class_category_ids(exemplars), command=command,
        details=vision_details(str(exemplar_list), roots, views, encoded,
                               combine=KINDS["vision-average"].computed)))
    return _summary(classifier, encoded, out_path)


def write_aggregated_classifier(exemplar_list: str | os.PathLike, out_path: str | os.PathLike, clip: ClipSpec,
                                roots: Mapping[str, Path], aggregator_path: str | os.PathLike, num_layers: int,
                                views: ViewSpec = AGGREGATOR_VIEWS, *, command: str | None = None,
                                trust_checkpoint: bool = False) -> ClassifierSummary:
    """Write the aggregator classifier of `exemplar_list` (float16 `(C, 512)`) to `out_path` with its
    sidecar, using the aggregator checkpoint `aggregator_path` (`trust_checkpoint`: unpickle any type it holds)."""
    check_classifier_path(out_path, [exemplar_list, aggregator_path])
    aggregator = VisualAggregator.from_checkpoint(aggregator_path, num_layers=num_layers, trust=trust_checkpoint)
    exemplars, bundle = _exemplars_and_image_tower(exemplar_list, clip, roots, views.skip_bad)
    check_aggregator_fits(aggregator, bundle.model_name, bundle.embed_dim)
    encoded = encode_exemplar_views(exemplars, bundle, views, roots, batch_size=clip.batch_size)
    classifier = aggregated_classifier(encoded, aggregator, views.num_views, bundle.device)
    save_classifier(out_path, classifier, make_sidecar(
        classifier, "vision-aggregated", bundle.describe(),
        space=KINDS["vision-aggregated"].space_with(aggregator.space),
        category_ids=class_category_ids(exemplars), command=command,
        details=vision_details(str(exemplar_list), roots, views, encoded, aggregator=str(aggregator_path),
                               num_layers=num_layers,
                               combine=KINDS["vision-aggregated"].computed)))
    return _summary(classifier, encoded, out_path)
