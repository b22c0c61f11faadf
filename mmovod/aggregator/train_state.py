"""Resumable training state on disk: checkpoint files (model, optimizer, scheduler, RNG, step) and the
checks that a checkpoint belongs to this cache and configuration."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import torch

from mmovod.aggregator.train_config import TrainConfig
from mmovod.features.feature_cache import FeatureCache, describe_clip
from mmovod.features.distributed import DistContext
from mmovod.io.atomic import atomic_open
from mmovod.io.checkpoints import load_torch_file
from mmovod.io.errors import InputError
from mmovod.io.launcher import command

TRAIN_FORMAT = "mmovod-visual-aggregator-train"
CHECKPOINT_RE = re.compile(r"checkpoint-(\d+)\.pth$")


def checkpoint_path(out_dir: Path, step: int) -> Path:
    return out_dir / f"checkpoint-{step:07d}.pth"


def latest_checkpoint(out_dir: Path) -> Path | None:
    found = sorted((int(m.group(1)), p) for p in out_dir.glob("checkpoint-*.pth") if (m := CHECKPOINT_RE.search(p.name)))
    return found[-1][1] if found else None


def save_torch(obj: dict[str, Any], path: Path) -> None:
    with atomic_open(path, "wb") as handle:
        torch.save(obj, handle)


def rng_states(ctx: DistContext) -> dict[str, Any]:
    states: dict[str, Any] = {"torch": torch.get_rng_state()}
    if ctx.device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(ctx.device)
    return states


def restore_rng(states: dict[str, Any], ctx: DistContext) -> None:
    torch.set_rng_state(states["torch"])
    if ctx.device.type == "cuda" and "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"], ctx.device)


def cache_identity(cache: FeatureCache) -> dict[str, Any]:
    return {"items_sha256": cache.index["items_sha256"], "num_rows": cache.num_rows, "classes": len(cache.classes)}


# what `restore` loads, with the check of its type: (check, what it must be)
RESUME_FIELDS: dict[str, tuple[Any, str]] = {
    "state_dict": (lambda v: isinstance(v, dict) and all(isinstance(t, torch.Tensor) for t in v.values()),
                   "the model's weights"),
    "optimizer": (lambda v: isinstance(v, dict) and isinstance(v.get("state"), dict)
                  and isinstance(v.get("param_groups"), list), "the optimizer state"),
    "scheduler": (lambda v: isinstance(v, dict) and isinstance(v.get("last_epoch"), int), "the scheduler state"),
    "rng": (lambda v: isinstance(v, dict) and isinstance(v.get("torch"), torch.Tensor)
            and v["torch"].dtype == torch.uint8, "the random-number generator state"),
    "step": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "a step count"),
}


def load_resume(path: Path, config: TrainConfig, cache: FeatureCache) -> dict[str, Any]:
    """Read a training checkpoint and check it belongs to this cache and configuration."""
    state = load_torch_file(path, "training checkpoint to resume from",
                            hint="resume only from the checkpoint-*.pth files this tool writes")
    if not isinstance(state, dict) or state.get("format") != TRAIN_FORMAT or "optimizer" not in state:
        raise InputError(f"{path}: not a training checkpoint of {command('train_visual_aggregator')}, so it cannot be "
                         "resumed from")
    if state.get("clip") != cache.clip:
        raise InputError(f"{path}: trained on CLIP {describe_clip(state.get('clip'))} features, the cache holds {describe_clip(cache.clip)}")
    if state.get("cache") != cache_identity(cache):
        raise InputError(f"{path}: trained on another feature cache than {cache.root}")
    old, new = state.get("config"), dataclasses.asdict(config)
    if not isinstance(old, dict):
        raise InputError(f"{path}: holds no training 'config' (cannot resume from it)")
    differing = [k for k in new if k not in TrainConfig.RESUMABLE_CHANGES and old.get(k) != new[k]]
    if differing:
        raise InputError(f"{path}: trained with other settings ({', '.join(f'{k}={old.get(k)}' for k in differing)}); pass the same flags to resume")
    for key, (ok, what) in RESUME_FIELDS.items():
        if key not in state:
            raise InputError(f"{path}: holds no {key!r} ({what}), so training cannot resume from it")
        if not ok(state[key]):
            raise InputError(f"{path}: {key!r} is not {what}, so training cannot resume from it")
    return state


def restore(state: dict[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer,
            scheduler: torch.optim.lr_scheduler.LRScheduler, ctx: DistContext, path: Path | None = None) -> int:
    """Load a checkpoint read by `load_resume` (from `path`) into the training objects; returns its step.
    A state that does not fit them (other weights, optimizer groups) is an InputError naming `path`."""
    try:
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        restore_rng(state["rng"], ctx)
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path or 'checkpoint'}: cannot resume from it ({reason[:200]})") from None
    return int(state["step"])


def save_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler, step: int, ctx: DistContext,
                    meta: dict[str, Any]) -> None:
    """Everything `restore` needs to continue after `step`, plus `meta` (CLIP, cache, config), written atomically."""
    save_torch({
        "format": TRAIN_FORMAT, "state_dict": model.state_dict(), "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(), "step": step, "rng": rng_states(ctx),
        "world_size": ctx.world_size, **meta,
    }, path)
