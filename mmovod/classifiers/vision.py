"""Image-exemplar classifiers: one row per class from its K exemplars x num_augs views.

- `average_classifier`: the mean of the raw CLIP image embeddings of the views, float32 `(C, D)`
  (what `get_exemplars_tta.py` writes; context 0.4, TTA always on).
- `aggregated_classifier`: the trained visual aggregator applied to the set of raw view embeddings,
  float16 `(C, 512)` (what `generate_vision_classifier_agg.py` writes; context 0.2, TTA optional).
Neither is L2-normalised. The flag group shared by both tools is `add_exemplar_view_args`;
`build_average_classifier` and `build_aggregated_classifier` are the two tools' whole steps.
"""
from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from mmovod.aggregator.model import VisualAggregator
from mmovod.cli.run import int_at_least
from mmovod.io.arrays import check_classifier_path, save_classifier
from mmovod.clip.factory import ClipBundle, load_clip
from mmovod.clip.crops import AGGREGATOR_CONTEXT, TTA_CONTEXT
from mmovod.io.errors import InputError
from mmovod.clip.image_encoding import ExemplarEmbeddings, encode_exemplars
from mmovod.readers.exemplar_list import ExemplarList, check_images_exist, class_category_ids, load_exemplar_list
from mmovod.readers.image_roots import image_roots_from_args
from mmovod.clip.views import bundle_view_transform

log = logging.getLogger(__name__)

AGGREGATOR_CLASS_BATCH = 128


def add_exemplar_view_args(parser: argparse.ArgumentParser, num_workers: int) -> None:
    """--num-augs, --seed, --nw and --skip-bad: how exemplar views are made."""
    group = parser.add_argument_group("exemplar views")
    group.add_argument("--num-augs", type=int_at_least(1), default=5, help="views per exemplar")
    group.add_argument("--seed", type=int_at_least(0), default=0,
                       help="TTA seed; view v of exemplar e of class c is drawn from a generator seeded by "
                            "(seed, c, e, v), so views are identical for any --nw or --batch-size (embeddings up to "
                            "float rounding of batched matmuls)")
    group.add_argument("--nw", type=int_at_least(0), default=num_workers,
                       help="DataLoader worker processes that decode, crop and augment (0: in the main process)")
    group.add_argument("--skip-bad", action="store_true",
                       help="skip unreadable images (counted, listed in the log and the sidecar) instead of "
                            "stopping at the first one; a class keeps its other exemplars")


def _encode(bundle: Any, exemplars: ExemplarList, roots: Mapping[str, Path], *, context: float, tta: bool,
            num_views: int, args: argparse.Namespace, progress: bool) -> ExemplarEmbeddings:
    return encode_exemplars(bundle, exemplars, roots, context=context, transform=bundle_view_transform(bundle, tta),
                            num_views=num_views, seed=args.seed, batch_size=args.batch_size,
                            num_workers=args.nw, skip_bad=args.skip_bad, progress=progress)


def average_classifier(bundle: Any, exemplars: ExemplarList, roots: Mapping[str, Path], args: argparse.Namespace,
                       context: float, progress: bool = True) -> tuple[np.ndarray, ExemplarEmbeddings]:
    """`(C, D)` float32: per class, the mean raw CLIP embedding of its exemplars' `args.num_augs` TTA views."""
    encoded = _encode(bundle, exemplars, roots, context=context, tta=True, num_views=args.num_augs,
                      args=args, progress=progress)
    return encoded.class_mean().numpy(), encoded


def aggregate_sets(aggregator: VisualAggregator, sets: torch.Tensor, mask: torch.Tensor, device: torch.device,
                   class_batch: int = AGGREGATOR_CLASS_BATCH) -> torch.Tensor:
    """`(C, N, D)` padded sets + `(C, N)` mask -> `(C, D)` float32, `class_batch` classes per forward pass."""
    aggregator = aggregator.to(device)
    out = []
    with torch.inference_mode():
        for x, valid in zip(sets.split(class_batch), mask.split(class_batch)):
            out.append(aggregator(x.to(device), valid.to(device)).float().cpu())
    return torch.cat(out)


def aggregated_classifier(bundle: Any, aggregator: VisualAggregator, exemplars: ExemplarList,
                          roots: Mapping[str, Path], args: argparse.Namespace, context: float,
                          progress: bool = True) -> tuple[np.ndarray, ExemplarEmbeddings]:
    """`(C, 512)` float16: the aggregator over each class's K x num_augs raw view embeddings.

    With `args.tta` every view is a TTA view; without it the plain crop is encoded once per exemplar
    and its embedding repeated num_augs times (the same set the original builds by re-encoding it).
    """
    if aggregator.dim != bundle.embed_dim:
        raise InputError(f"the aggregator takes {aggregator.dim}-d embeddings but {bundle.model_name} "
                         f"gives {bundle.embed_dim}-d ones (use the CLIP the aggregator was trained with)")
    num_views = args.num_augs if args.tta else 1
    encoded = _encode(bundle, exemplars, roots, context=context, tta=args.tta, num_views=num_views,
                      args=args, progress=progress)
    sets, mask = encoded.padded_sets(repeat=1 if args.tta else args.num_augs)
    return aggregate_sets(aggregator, sets, mask, bundle.device).half().numpy(), encoded


def provenance(bundle: Any, exemplars: ExemplarList, source: str, roots: Mapping[str, Path],
               encoded: ExemplarEmbeddings, **extra: Any) -> dict[str, Any]:
    """The sidecar fields shared by both vision classifiers."""
    counts = torch.bincount(encoded.class_of[encoded.valid], minlength=encoded.num_classes)
    return {
        **bundle.describe(),
        "exemplar_list": source,
        "image_roots": {name: str(path) for name, path in roots.items()},
        "normalised": False,
        "category_ids": class_category_ids(exemplars),
        "exemplars_per_class": {"min": int(counts.min()), "max": int(counts.max())},
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


def _summary(classifier: np.ndarray, encoded: ExemplarEmbeddings, path: str) -> ClassifierSummary:
    return ClassifierSummary(classifier.shape[0], classifier.shape[1], str(classifier.dtype), len(encoded.skipped),
                             str(path))


def _roots_and_image_tower(exemplars: ExemplarList, args: argparse.Namespace,
                           device: str | None) -> tuple[dict[str, Path], ClipBundle]:
    """Check every exemplar image exists under the image-root flags, then load CLIP's image tower."""
    roots = image_roots_from_args(args)
    check_images_exist(exemplars, roots, args.skip_bad)
    return roots, load_clip(args.clip_model, args.pretrained, device, tower="image")


def build_average_classifier(exemplar_list: str, out_path: str, args: argparse.Namespace) -> ClassifierSummary:
    """Write the averaged classifier of `exemplar_list` (float32 `(C, D)`, context 0.4, TTA views) to
    `out_path` with its sidecar. `args` holds the shared flags: CLIP, image roots, exemplar views."""
    check_classifier_path(out_path)
    exemplars = load_exemplar_list(exemplar_list)
    roots, bundle = _roots_and_image_tower(exemplars, args, args.device)
    classifier, encoded = average_classifier(bundle, exemplars, roots, args, TTA_CONTEXT)
    save_classifier(out_path, classifier, provenance(
        bundle, exemplars, exemplar_list, roots, encoded, context=TTA_CONTEXT, num_augs=args.num_augs, tta=True,
        seed=args.seed, combine="mean of the raw CLIP image embeddings of K x num_augs views"))
    return _summary(classifier, encoded, out_path)


def build_aggregated_classifier(exemplar_list: str, out_path: str, load_path: str, num_layers: int,
                                args: argparse.Namespace, device: str | None,
                                trust_checkpoint: bool = False) -> ClassifierSummary:
    """Write the aggregator classifier of `exemplar_list` (float16 `(C, 512)`, context 0.2) to `out_path`
    with its sidecar, using the checkpoint `load_path` (`trust_checkpoint`: unpickle any type it holds).
    `args` holds the shared flags (CLIP, image roots, exemplar views) and `tta`."""
    check_classifier_path(out_path)
    exemplars = load_exemplar_list(exemplar_list)
    aggregator = VisualAggregator.from_checkpoint(load_path, num_layers=num_layers, trust=trust_checkpoint)
    roots, bundle = _roots_and_image_tower(exemplars, args, device)
    classifier, encoded = aggregated_classifier(bundle, aggregator, exemplars, roots, args, AGGREGATOR_CONTEXT)
    save_classifier(out_path, classifier, provenance(
        bundle, exemplars, exemplar_list, roots, encoded, context=AGGREGATOR_CONTEXT, num_augs=args.num_augs,
        tta=args.tta, seed=args.seed, aggregator=load_path, num_layers=num_layers,
        combine="visual aggregator over the raw CLIP image embeddings of K x num_augs views"))
    return _summary(classifier, encoded, out_path)
