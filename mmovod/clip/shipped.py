"""The CLIP shipped with mmovod, by name: `world`, the demo world's trained model, found in any install.

`--clip_model world` stands for the model config `mmovod/data/world_clip.json` with the float16
weights `mmovod/data/world_clip.pt` (7.3 MB). It is the one CLIP that works offline out of the box;
it knows the demo's procedural world, not real photos. No torch here (the identity of a sidecar's
CLIP is computed without it).
"""
from __future__ import annotations

from pathlib import Path

from mmovod.io.errors import InputError

WORLD = "world"
WORLD_SUMMARY = "shipped, works offline: the demo world's CLIP, 128-d"


def world_clip_paths() -> tuple[Path, Path]:
    """The demo world's trained CLIP shipped with mmovod: (open_clip config, float16 weights)."""
    data = Path(__file__).parents[1] / "data"
    return data / "world_clip.json", data / "world_clip.pt"


def expand_shipped(clip_model: str, pretrained: str | None) -> tuple[str, str | None]:
    """(config path, weights path) for `world`; any other model unchanged.

    InputError when `world` comes with other weights than its own."""
    if clip_model != WORLD:
        return clip_model, pretrained
    config, weights = world_clip_paths()
    if pretrained is not None and Path(pretrained).resolve() != weights.resolve():
        raise InputError(f"--clip_model world comes with its own weights ({weights}): leave out --pretrained {pretrained}")
    return str(config), str(weights)
