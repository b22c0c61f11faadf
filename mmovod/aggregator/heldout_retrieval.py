"""Detector-free evaluation of a visual aggregator: class retrieval on held-out classes.

For each trial and each held-out class, K exemplar images are drawn (the K-sets are nested: the
first K of one random order, so larger K only adds exemplars) and up to `queries` other images of
the class become queries. Class vectors are the aggregator's output for the K exemplars, or the
plain average of the same features; each query is classified by its nearest class vector
(cosine), the query being its own raw CLIP feature (the mean of its views) for both, as a detector
compares its region embeddings with the rows: nothing passes a query through the aggregator. An
image enters the aggregator as all its cached views (K x V raw tokens, as the inference tool with
--tta); for averaging, its raw views are averaged (as get_exemplars_tta does).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from mmovod.aggregator.model import VisualAggregator
from mmovod.aggregator.model import aggregate, trained_clip
from mmovod.io.atomic import check_output_path
from mmovod.clip.factory import resolve_device
from mmovod.io.errors import InputError
from mmovod.features.feature_cache import FeatureCache, check_cache_clip
from mmovod.io.json_files import save_json
from mmovod.readers.class_list import read_class_list
from mmovod.io.wording import plural

log = logging.getLogger(__name__)


@dataclass
class RetrievalResult:
    ks: list[int]
    aggregator: dict[int, float]
    average: dict[int, float]
    classes: list[str]
    queries: int
    trials: int

    @property
    def chance(self) -> float:
        return 1.0 / len(self.classes)

    def as_json(self) -> dict:
        return {
            "metric": "class-retrieval top-1 accuracy (nearest class vector, cosine)",
            "queries": "raw CLIP image embeddings (mean of each image's views), as a detector's region embeddings",
            "classes": len(self.classes),
            "queries_per_trial": self.queries,
            "trials": self.trials,
            "chance": self.chance,
            "by_k": {str(k): {"aggregator": self.aggregator[k], "average": self.average[k]} for k in self.ks},
        }


def select_classes(cache: FeatureCache, names: list[str] | None, min_images: int, strict: bool) -> list[int]:
    """Indices of the evaluated classes: `names` (all cache classes when None) with at least
    `min_images` images; smaller ones are skipped with a report, or raise InputError with `strict`."""
    if names is None:
        chosen = list(range(len(cache.classes)))
    else:
        position = {n: i for i, n in enumerate(cache.classes)}
        missing = [n for n in names if n not in position]
        if missing:
            raise InputError(f"{cache.root}: {len(missing)} requested classes are not in the cache (first: {missing[0]})")
        chosen = [position[n] for n in names]
    sizes = cache.class_sizes
    small = [i for i in chosen if sizes[i] < min_images]
    if small:
        message = f"{plural(len(small), 'class has', 'classes have')} fewer than {min_images} images (max K + 1), e.g. {cache.classes[small[0]]} ({sizes[small[0]]})"
        if strict:
            raise InputError(f"{cache.root}: {message} (--strict)")
        log.warning("skipping %s", message)
    kept = [i for i in chosen if sizes[i] >= min_images]
    if len(kept) < 2:
        raise InputError(f"{cache.root}: fewer than 2 classes with at least {min_images} images to evaluate")
    return kept


def view_features(cache: FeatureCache, rows: np.ndarray) -> torch.Tensor:
    """float32 `(n, views, dim)`: every cached view of each row, raw."""
    rows = np.asarray(rows).reshape(-1)
    out = np.stack([cache.gather(rows, np.full_like(rows, v)) for v in range(cache.views)], axis=1)
    cache.check_finite(rows, out)
    return torch.from_numpy(out.astype(np.float32))


@torch.inference_mode()
def retrieval_accuracy(
    cache: FeatureCache,
    model: torch.nn.Module,
    class_ids: list[int],
    ks: list[int],
    queries: int,
    trials: int,
    seed: int,
    device: torch.device,
) -> RetrievalResult:
    """Top-1 class-retrieval accuracy per K for the aggregator and for plain averaging."""
    model = model.to(device).eval()
    k_max = max(ks)
    sizes = cache.class_sizes
    correct_agg = {k: 0 for k in ks}
    correct_avg = {k: 0 for k in ks}
    total = 0
    for trial in range(trials):
        rng = np.random.default_rng([seed, trial])
        exemplar_rows, query_rows, query_labels = [], [], []
        for label, c in enumerate(class_ids):
            order = rng.permutation(int(sizes[c])) + int(cache.class_offsets[c])
            exemplar_rows.append(order[:k_max])
            q = order[k_max:k_max + queries]
            query_rows.append(q)
            query_labels.append(np.full(len(q), label))
        v = cache.views
        exemplars = view_features(cache, np.stack(exemplar_rows)).reshape(len(class_ids), k_max, v, cache.dim).to(device)
        queries_views = view_features(cache, np.concatenate(query_rows)).to(device)
        query = F.normalize(queries_views.mean(dim=1), dim=-1)
        labels = torch.from_numpy(np.concatenate(query_labels)).to(device)
        total += len(labels)
        for k in ks:
            tokens = exemplars[:, :k].reshape(len(class_ids), k * v, cache.dim)
            agg = F.normalize(aggregate(model, tokens), dim=-1)
            avg = F.normalize(tokens.mean(dim=1), dim=-1)
            correct_agg[k] += int(((query @ agg.T).argmax(dim=1) == labels).sum())
            correct_avg[k] += int(((query @ avg.T).argmax(dim=1) == labels).sum())
    return RetrievalResult(
        ks=list(ks),
        aggregator={k: correct_agg[k] / total for k in ks},
        average={k: correct_avg[k] / total for k in ks},
        classes=[cache.classes[c] for c in class_ids],
        queries=total // trials,
        trials=trials,
    )


@dataclass
class EvalRun:
    """What `evaluate_aggregator` measured and wrote."""
    result: RetrievalResult
    classes: int
    clip: dict[str, Any]
    path: Path


def evaluate_aggregator(
    cache_dir: str | os.PathLike,
    load_path: str | os.PathLike,
    num_layers: int,
    out_path: str | os.PathLike,
    *,
    classes_path: str | os.PathLike | None,
    ks: Sequence[int],
    queries: int,
    trials: int,
    seed: int,
    device: str | None,
    strict: bool = False,
    trust_checkpoint: bool = False,
) -> EvalRun:
    """Class retrieval of the aggregator checkpoint `load_path` on the cache's (or the listed) classes,
    against averaging, saved as JSON to `out_path`. A checkpoint trained on another CLIP is refused;
    `trust_checkpoint` unpickles any type the checkpoint holds (`mmovod.io.checkpoints`)."""
    out = check_output_path(out_path, [load_path, classes_path])
    if min(ks) < 1 or queries < 1 or trials < 1:
        raise InputError("--ks, --queries and --trials must be positive")
    if seed < 0:
        raise InputError(f"--seed must not be negative, got {seed}")
    cache = FeatureCache(cache_dir)
    trained_on = trained_clip(load_path, trust_checkpoint)
    if trained_on is not None:
        check_cache_clip(cache, trained_on.get("clip_model"), trained_on.get("pretrained"))
    model = VisualAggregator.from_checkpoint(load_path, num_layers=num_layers, trust=trust_checkpoint)
    if model.dim != cache.dim:
        raise InputError(f"{load_path}: aggregator of dim {model.dim}, but the cache holds {cache.dim}-dim features")
    names = read_class_list(classes_path) if classes_path else None
    ids = select_classes(cache, names, max(ks) + 1, strict)
    result = retrieval_accuracy(cache, model, ids, sorted(set(ks)), queries, trials, seed, resolve_device(device))
    save_json(out, {**result.as_json(), "cache": str(cache.root), "clip": cache.clip, "load_path": str(load_path)},
              indent=True)
    return EvalRun(result, len(ids), cache.clip, out)
