"""The training objective: an aggregated exemplar set must classify raw CLIP embeddings of other images.

Per class of an episode, the first `split` tokens (K_a images) go through the aggregator; the other
K_b images of the class are queries that never pass through it: each is its raw CLIP embedding (the
mean of its views in the episode), L2-normalised, as a detector's region embedding is. Every query
is classified against the aggregated rows of all the classes of the (global) batch by cosine at
CLIP's logit scale, with cross-entropy. So the rows are trained to sit in CLIP's image space, where a
detector compares them with region embeddings (after OVMR, Ma et al., CVPR 2024, which trains its
aggregated exemplar tokens against CLIP embeddings of other images of the class).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from mmovod.aggregator.model import aggregate
from mmovod.features.distributed import DistContext


def exemplar_rows(model: torch.nn.Module, x: torch.Tensor, split: int) -> torch.Tensor:
    """`(b, split, dim)` exemplar tokens of `(b, tokens, dim)` through the aggregator -> `(b, dim)` float32."""
    return aggregate(model, x[:, :split])


def query_embeddings(x: torch.Tensor, split: int, k_b: int) -> torch.Tensor:
    """The queries of `(b, tokens, dim)`, tokens after `split`: `(b, k_b, dim)` float32 unit vectors, each the
    mean of one image's views (the tokens of an image are consecutive)."""
    b, n, d = x.shape
    views = (n - split) // k_b
    return F.normalize(x[:, split:].float().reshape(b, k_b, views, d).mean(dim=2), dim=-1)


def query_loss(rows: torch.Tensor, queries: torch.Tensor, logit_scale: float) -> torch.Tensor:
    """Cross-entropy of `(B, q, dim)` unit `queries` (those of class i in row i) against the `(B, dim)` `rows`
    of every class (L2-normalised here), logits scaled by `logit_scale`."""
    b, q, d = queries.shape
    logits = logit_scale * queries.reshape(b * q, d) @ F.normalize(rows, dim=-1).T
    target = torch.arange(b, device=queries.device).repeat_interleave(q)
    return F.cross_entropy(logits, target)


def gather_across_ranks(x: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Concatenate `x` of every rank (rank order) keeping the gradient path to the local part."""
    if not ctx.distributed:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x), dim=0)
