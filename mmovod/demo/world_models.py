"""Stand-in CLIP models for the demo and the tests: a tiny architecture and seeded random weights."""
from __future__ import annotations

from pathlib import Path

import open_clip
import torch

from mmovod.clip.factory import quiet_open_clip, resolve_model_name
from mmovod.clip.shipped import world_clip_paths

__all__ = ["save_random_checkpoint", "tiny_clip_config_path", "world_aggregator_path", "world_clip_paths"]


def tiny_clip_config_path() -> Path:
    """A tiny open_clip architecture (embed dim 512, 2-layer towers) shipped for the demo and the tests."""
    return Path(__file__).parents[1] / "data" / "tiny_clip.json"


def save_random_checkpoint(config_path: str | Path, out_path: str | Path, seed: int = 0) -> None:
    """Initialise the architecture of `config_path` from `seed` and save its state dict (atomically).

    The file loads back through `load_clip(config_path, pretrained=out_path)`, the path a user with
    a downloaded checkpoint takes.
    """
    from mmovod.io.atomic import atomic_open

    name, _ = resolve_model_name(str(config_path), None)
    with torch.random.fork_rng(devices=[]), quiet_open_clip(no_weights_wanted=True):  # random on purpose
        torch.manual_seed(seed)
        model = open_clip.create_model(name, pretrained=None)
    with atomic_open(out_path, "wb") as handle:
        torch.save({"state_dict": model.state_dict()}, handle)


def world_aggregator_path() -> Path:
    """The 4-layer visual aggregator trained on the demo world's CLIP, shipped with mmovod (float16)."""
    return Path(__file__).parents[1] / "data" / "world_aggregator.pth"
