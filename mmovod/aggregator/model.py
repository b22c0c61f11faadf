"""The MM-OVOD visual aggregator: a small transformer that turns K exemplar embeddings into one vector.

Parameter names match the authors' released checkpoint (`visual_aggregator_ckpt_4_transformer.pth`):
`mapper.linear`, `mapper.cls_token` and `mapper.transformer.layers.{i}.{norm1,attn,norm2,mlp}`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from mmovod.io.checkpoints import check_finite_weights, load_torch_file
from mmovod.io.errors import InputError
from mmovod.io.launcher import command

if TYPE_CHECKING:
    from mmovod.aggregator.train_config import TrainConfig

CLS_INIT_STD = 0.02
CLIP_SPACE_OBJECTIVE = "clip-space"
"""The `objective` our checkpoints record when their outputs were trained to live in CLIP's image space
(`mmovod.aggregator.objective`); files without it (the authors' released weights, our earlier
objective) give rows in a space of their own."""


class Attention(nn.Module):
    """Multi-head self-attention; keys and values come from one projection split as [keys | values]."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.to_queries = nn.Linear(dim, dim, bias=False)
        self.to_keys_values = nn.Linear(dim, 2 * dim, bias=False)
        self.project = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, attend: torch.Tensor | None = None) -> torch.Tensor:
        b, t, c = x.shape
        h = self.num_heads
        q = self.to_queries(x).reshape(b, t, h, c // h).transpose(1, 2)
        kv = self.to_keys_values(x).reshape(b, t, 2, h, c // h)
        k, v = kv[:, :, 0].transpose(1, 2), kv[:, :, 1].transpose(1, 2)
        mask = None if attend is None else attend[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.project(out.transpose(1, 2).reshape(b, t, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x)))


class Layer(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, attend: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), attend)
        return x + self.mlp(self.norm2(x))


class Transformer(nn.Module):
    def __init__(self, dim: int, num_heads: int, num_layers: int, mlp_ratio: float):
        super().__init__()
        self.layers = nn.ModuleList(Layer(dim, num_heads, mlp_ratio) for _ in range(num_layers))

    def forward(self, x: torch.Tensor, attend: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, attend)
        return x


class Mapper(nn.Module):
    def __init__(self, dim: int, num_heads: int, num_layers: int, mlp_ratio: float):
        super().__init__()
        self.linear = nn.Linear(dim, dim)
        self.cls_token = nn.Parameter(torch.randn(1, dim))
        self.transformer = Transformer(dim, num_heads, num_layers, mlp_ratio)


class VisualAggregator(nn.Module):
    """Maps a set of CLIP image embeddings `(B, K, dim)` to one vector per set `(B, dim)`.

    The inputs go through `mapper.linear`, a learned cls token is appended after them, the tokens
    pass `num_layers` pre-norm transformer blocks (no final norm), and the cls token is returned.
    `valid` (optional, `(B, K)` bool, True = a real exemplar) lets sets of different sizes share a
    batch: padded positions are never attended to, so the result equals one set at a time.
    """

    def __init__(self, dim: int = 512, num_layers: int = 4, num_heads: int = 8, mlp_ratio: float = 4.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim = dim
        self.mapper = Mapper(dim, num_heads, num_layers, mlp_ratio)
        self.space = "aggregator"
        """Where its outputs live: `clip` when loaded from a checkpoint of the CLIP-space objective."""

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        b = x.shape[0]
        tokens = torch.cat([self.mapper.linear(x), self.mapper.cls_token.expand(b, 1, self.dim)], dim=1)
        attend = None
        if valid is not None:
            attend = torch.cat([valid.bool(), valid.new_ones((b, 1), dtype=torch.bool)], dim=1)
        return self.mapper.transformer(tokens, attend)[:, -1]

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, num_layers: int = 4, map_location: Any = "cpu",
                        trust: bool = False) -> "VisualAggregator":
        """Load the authors' checkpoint (a dict with `state_dict`, or a bare state dict) with strict keys;
        `trust` unpickles any type the file holds (see `read_state_dict`)."""
        if not Path(path).exists():
            raise InputError(f"{path}: aggregator checkpoint not found (the released ones: "
                             f"{command('download_assets', '--only checkpoints')})")
        obj = load_torch_file(path, "aggregator checkpoint", trust=trust, map_location=map_location)
        state = _state_dict_of(obj, path)
        model = cls(dim=_infer_dim(state, path), num_layers=num_layers)
        model.space = _space_of(obj)
        expected = set(model.state_dict())
        missing = sorted(expected - set(state))
        unexpected = sorted(set(state) - expected)
        if missing or unexpected:
            first = f"missing key {missing[0]}" if missing else f"unexpected key {unexpected[0]}"
            raise InputError(
                f"{path}: not a {num_layers}-layer visual aggregator checkpoint ({first}; "
                f"{len(missing)} missing, {len(unexpected)} unexpected; check --num-layers)"
            )
        _check_weights(state, path)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise InputError(f"{path}: {str(exc).splitlines()[-1].strip()}") from None
        return model.eval()


def read_state_dict(path: str | os.PathLike, map_location: Any = "cpu", trust: bool = False) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file, with a `state_dict` wrapper and DDP `module.` prefixes removed.

    Nothing but tensors, containers and a few harmless types is unpickled unless `trust`
    (`mmovod.io.checkpoints.load_torch_file`).
    """
    return _state_dict_of(load_torch_file(path, "aggregator checkpoint", trust=trust, map_location=map_location), path)


def _state_dict_of(obj: Any, path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a loaded checkpoint object (see `read_state_dict`)."""
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(f"{path}: expected a state dict (or a dict with 'state_dict') of tensors")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj.items()}


def _space_of(obj: Any) -> str:
    """`clip` when a loaded checkpoint object records the CLIP-space objective, else `aggregator`."""
    objective = obj.get("objective") if isinstance(obj, dict) else None
    return "clip" if objective == CLIP_SPACE_OBJECTIVE else "aggregator"


def _infer_dim(state: dict[str, torch.Tensor], path: str | os.PathLike, num_heads: int = 8) -> int:
    """The width of the aggregator whose weights `state` holds (its cls token is `(1, dim)`)."""
    token = state.get("mapper.cls_token")
    if token is None:
        raise InputError(f"{path}: not a visual aggregator checkpoint (missing key mapper.cls_token)")
    if token.dim() != 2 or token.shape[0] != 1 or token.shape[1] == 0 or token.shape[1] % num_heads:
        raise InputError(f"{path}: not a visual aggregator checkpoint (mapper.cls_token has shape "
                         f"{list(token.shape)}, expected [1, dim] with dim a multiple of {num_heads})")
    return int(token.shape[1])


def _check_weights(state: dict[str, torch.Tensor], path: str | os.PathLike) -> None:
    """InputError naming the first tensor that is not floating point or holds NaN/inf (its rows would be NaN)."""
    for name, tensor in state.items():
        if not tensor.is_floating_point():
            raise InputError(f"{path}: {name} holds {tensor.dtype} values, expected floating-point weights")
    check_finite_weights(state, path, "aggregator checkpoint")


def aggregate(model: torch.nn.Module, features: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """`(B, K, dim)` raw CLIP embeddings (any dtype) -> `(B, dim)` float32 aggregator outputs (not normalised).

    Inputs are not normalised, as in the vision-classifier tools (and the original code).
    """
    return model(features.float(), valid)


def trained_clip(path: str | os.PathLike, trust: bool = False) -> dict[str, Any] | None:
    """The CLIP (`ClipBundle.describe()`) a checkpoint of ours was trained for; None for files that do
    not record it (the authors' released weights). InputError for a file that cannot be read safely."""
    obj = load_torch_file(path, "aggregator checkpoint", trust=trust)
    clip = obj.get("clip") if isinstance(obj, dict) else None
    return clip if isinstance(clip, dict) else None


def output_space(path: str | os.PathLike, trust: bool = False) -> str:
    """`clip` when the checkpoint records the CLIP-space objective, else `aggregator` (its rows live in a
    space of their own: the authors' released weights, our earlier objective, unknown files)."""
    return _space_of(load_torch_file(path, "aggregator checkpoint", trust=trust))


def build_model(config: TrainConfig, dim: int) -> VisualAggregator:
    """A freshly initialised aggregator; the initialisation is a function of `config.seed` only.

    The cls token starts small (normal, std `CLS_INIT_STD`, the ViT convention) instead of the
    module's unit normal: a unit-normal token of norm ~sqrt(dim) outweighs what attention adds to it,
    so every set starts with nearly the same output, and on raw CLIP features (which share a large
    common direction) the contrastive loss then has almost no gradient.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = VisualAggregator(dim=dim, num_layers=config.num_layers)
        torch.nn.init.normal_(model.mapper.cls_token, std=CLS_INIT_STD)
    return model
