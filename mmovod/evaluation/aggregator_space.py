"""Crops in the visual aggregator's output space, for classifiers the aggregator made: each crop's
views go through the aggregator as a set of one image (as `mmovod.aggregator.heldout_retrieval` embeds a
query), then are L2-normalised."""
from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import torch

from mmovod.aggregator.model import VisualAggregator
from mmovod.aggregator.model import aggregate, trained_clip
from mmovod.clip.factory import resolve_device
from mmovod.evaluation.scoring import ClipIdentity, EvalClassifier
from mmovod.io.errors import InputError

log = logging.getLogger(__name__)

AGGREGATOR_BATCH = 4096
DEFAULT_LAYERS = 4


def load_aggregator(checkpoint: str, num_layers: int | None, needing: Sequence[EvalClassifier],
                    clip: ClipIdentity) -> VisualAggregator:
    """The checkpoint as an aggregator (layers: `num_layers`, else the sidecar's, else 4), checked to be
    trained on `clip` (when it records it) and to give rows of the classifiers' size."""
    layers = num_layers or next((c.aggregator_layers for c in needing if c.aggregator_layers), DEFAULT_LAYERS)
    model = VisualAggregator.from_checkpoint(checkpoint, num_layers=layers)
    trained_on = trained_clip(checkpoint)
    if trained_on is not None and trained_on.get("clip_model") is not None:
        own = ClipIdentity(trained_on["clip_model"], trained_on.get("pretrained"))
        if not own.same_as(clip):
            raise InputError(f"{checkpoint}: aggregator trained on CLIP {own.describe()}, but the classifiers "
                             f"were made with {clip.describe()}")
    for c in needing:
        if c.rows.shape[1] != model.dim:
            raise InputError(f"{c.path}: rows are {c.rows.shape[1]}-d, the aggregator gives {model.dim}-d outputs")
    return model


@torch.inference_mode()
def aggregated_embeddings(model: VisualAggregator, views: np.ndarray, device: str | None) -> np.ndarray:
    """`(N, V, D)` raw view embeddings -> `(N, D)` float32 unit aggregator outputs, one set per crop."""
    torch_device = resolve_device(device)
    model = model.to(torch_device).eval()
    chunks = np.array_split(views, max(1, -(-len(views) // AGGREGATOR_BATCH)))
    out = np.concatenate([aggregate(model, torch.from_numpy(c).to(torch_device)).cpu().numpy() for c in chunks])
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), np.finfo(np.float32).tiny)
