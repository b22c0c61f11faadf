"""The contrastive objective: both exemplar sets of an episode through the aggregator, gathered across
ranks, and the symmetric InfoNCE loss between them."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from mmovod.aggregator.model import aggregate
from mmovod.features.distributed import DistContext


def embed_pair(model: torch.nn.Module, x: torch.Tensor, k_a: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Aggregate sets A = x[:, :k_a] and B = x[:, k_a:] of `(b, tokens, dim)` in one forward pass
    (the shorter set is padded and masked) -> two `(b, dim)` float32 outputs."""
    b, n, d = x.shape
    k_b = n - k_a
    k = max(k_a, k_b)
    sets = x.new_zeros((2 * b, k, d))
    sets[:b, :k_a] = x[:, :k_a]
    sets[b:, :k_b] = x[:, k_a:]
    valid = None
    if k_a != k_b:
        valid = torch.zeros((2 * b, k), dtype=torch.bool, device=x.device)
        valid[:b, :k_a] = True
        valid[b:, :k_b] = True
    out = aggregate(model, sets, valid)
    return out[:b], out[b:]


def symmetric_info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE between `(B, D)` sets `a` and `b`: row i of each is the positive pair, both directions averaged."""
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    logits = a @ b.T / temperature
    target = torch.arange(len(a), device=a.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def gather_across_ranks(x: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Concatenate `x` of every rank (rank order) keeping the gradient path to the local part."""
    if not ctx.distributed:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x), dim=0)
