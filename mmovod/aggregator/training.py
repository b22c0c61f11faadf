"""Episodic contrastive training of the visual aggregator on cached CLIP features.

One step (an episode): draw `batch_classes` classes and the set sizes of the step (K_a in
[k_min, k_max]; K_b the same or drawn independently, `k_pairing`), and for each class two disjoint
sets of K_a and K_b images. An image enters a set as all its cached views (`view_sampling="all"`,
K x V tokens, like the inference tool with --tta --num-augs V) or as one random view ("one").
Both sets go through the aggregator (raw CLIP embeddings in, as at inference), and a symmetric
InfoNCE loss on the L2-normalised outputs treats the two sets of a class as the
positive pair and every other class of the (global) batch as a negative. AdamW, linear warm-up,
cosine decay. Every episode is a pure function of (seed, step), so a resumed run sees the same
episodes as an uninterrupted one, and under DDP each rank gathers only its own slice of them.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable

import numpy as np
import orjson
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from mmovod.aggregator.model import VisualAggregator
from mmovod.io.atomic import atomic_open, check_output_dir, output_error
from mmovod.aggregator.distributed import DistContext, init_distributed, shutdown
from mmovod.io.checkpoints import load_torch_file
from mmovod.io.errors import InputError
from mmovod.aggregator.feature_cache import FeatureCache, check_cache_clip, describe_clip
from mmovod.io.json_files import dumps_json

log = logging.getLogger(__name__)

TRAIN_FORMAT = "mmovod-visual-aggregator-train"
FINAL_NAME = "visual_aggregator.pth"
METRICS_NAME = "metrics.jsonl"
CLS_INIT_STD = 0.02
K_PAIRINGS = ("independent", "same")
VIEW_SAMPLINGS = ("all", "one")
CHECKPOINT_RE = re.compile(r"checkpoint-(\d+)\.pth$")


@dataclass
class TrainConfig:
    """Every training choice; saved in each checkpoint. Defaults are documented in the README."""

    steps: int = 20000
    batch_classes: int = 256
    k_min: int = 1
    k_max: int = 10
    temperature: float = 0.07
    lr: float = 1e-4
    weight_decay: float = 0.05
    warmup_steps: int = 1000
    min_lr_ratio: float = 0.01
    grad_clip: float = 1.0
    num_layers: int = 4
    seed: int = 0
    k_pairing: str = "independent"
    view_sampling: str = "all"

    def check(self) -> None:
        if not 1 <= self.k_min <= self.k_max:
            raise InputError(f"need 1 <= --k-min <= --k-max, got {self.k_min} and {self.k_max}")
        if self.batch_classes < 2:
            raise InputError(f"--batch-classes must be at least 2 (the other classes are the negatives), got {self.batch_classes}")
        if self.steps < 1 or self.warmup_steps < 0:
            raise InputError("--steps must be positive and --warmup-steps not negative")
        if self.k_pairing not in K_PAIRINGS:
            raise InputError(f"--k-pairing must be one of {', '.join(K_PAIRINGS)}, got {self.k_pairing!r}")
        if self.view_sampling not in VIEW_SAMPLINGS:
            raise InputError(f"--view-sampling must be one of {', '.join(VIEW_SAMPLINGS)}, got {self.view_sampling!r}")
        if self.temperature <= 0:
            raise InputError(f"--temperature must be positive, got {self.temperature}")
        if not (self.lr > 0 and self.weight_decay >= 0 and 0 <= self.min_lr_ratio <= 1 and self.grad_clip >= 0):
            raise InputError("need --lr > 0, --weight-decay >= 0, 0 <= --min-lr-ratio <= 1 and --grad-clip >= 0 "
                             f"(got {self.lr}, {self.weight_decay}, {self.min_lr_ratio}, {self.grad_clip})")
        if self.num_layers < 1:
            raise InputError(f"--num-layers must be at least 1, got {self.num_layers}")
        if self.seed < 0:
            raise InputError(f"--seed must not be negative, got {self.seed}")

    # Fields that may change when resuming (how long to train), all others must match the checkpoint.
    RESUMABLE_CHANGES = ("steps",)


@dataclass
class Episode:
    """Two disjoint exemplar sets per class as tokens: columns [:split] of `rows` are set A, the rest set B."""

    step: int
    k_a: int
    k_b: int
    split: int
    rows: np.ndarray  # (B, tokens) global cache row of each token (an image repeats once per view with "all")
    views: np.ndarray  # (B, tokens) view index of each token


def eligible_classes(cache: FeatureCache, min_images: int, strict: bool) -> np.ndarray:
    """Indices of the classes with at least `min_images` rows; the others are skipped with a report
    (or raise InputError with `strict`)."""
    sizes = cache.class_sizes
    small = np.flatnonzero(sizes < min_images)
    if len(small):
        names = ", ".join(f"{cache.classes[i]} ({sizes[i]})" for i in small[:5])
        more = f" and {len(small) - 5} more" if len(small) > 5 else ""
        message = f"{len(small)} of {len(sizes)} classes have fewer than {min_images} images (2 x --k-max): {names}{more}"
        if strict:
            raise InputError(f"{cache.root}: {message} (--strict)")
        log.warning("skipping %s", message)
    return np.flatnonzero(sizes >= min_images)


class EpisodeSampler:
    """Draws episodes from the rows of eligible classes; `sample(step)` depends only on (seed, step)."""

    def __init__(self, cache: FeatureCache, classes: np.ndarray, config: TrainConfig):
        if len(classes) < config.batch_classes:
            raise InputError(
                f"{cache.root}: only {len(classes)} classes have at least {2 * config.k_max} images, "
                f"fewer than --batch-classes {config.batch_classes}"
            )
        self.starts = cache.class_offsets[classes]
        self.sizes = cache.class_sizes[classes]
        self.classes = classes
        self.views = cache.views
        self.config = config

    def sample(self, step: int) -> Episode:
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, step])
        k_a = int(rng.integers(cfg.k_min, cfg.k_max + 1))
        k_b = k_a if cfg.k_pairing == "same" else int(rng.integers(cfg.k_min, cfg.k_max + 1))
        chosen = rng.choice(len(self.classes), size=cfg.batch_classes, replace=False)
        picks = np.stack([rng.choice(int(self.sizes[c]), size=k_a + k_b, replace=False) for c in chosen])
        rows = self.starts[chosen][:, None] + picks
        if cfg.view_sampling == "one":
            return Episode(step, k_a, k_b, k_a, rows, rng.integers(0, self.views, size=rows.shape))
        views = np.broadcast_to(np.arange(self.views), (*rows.shape, self.views)).reshape(len(rows), -1)
        return Episode(step, k_a, k_b, k_a * self.views, np.repeat(rows, self.views, axis=1), views)


def load_episode(cache: FeatureCache, episode: Episode, part: slice) -> np.ndarray:
    """float16 `(b, tokens, dim)` features of the classes `part` of `episode` (this rank's share)."""
    rows, views = episode.rows[part], episode.views[part]
    features = cache.gather(rows.reshape(-1), views.reshape(-1))
    cache.check_finite(rows, features)
    return features.reshape(*rows.shape, cache.dim)


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


def aggregate(model: torch.nn.Module, features: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """`(B, K, dim)` raw CLIP embeddings (any dtype) -> `(B, dim)` float32 aggregator outputs (not normalised).

    Inputs are not normalised, as in the vision-classifier tools (and the original code).
    """
    return model(features.float(), valid)


def symmetric_info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE between `(B, D)` sets `a` and `b`: row i of each is the positive pair, both directions averaged."""
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    logits = a @ b.T / temperature
    target = torch.arange(len(a), device=a.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def lr_factor(step: int, config: TrainConfig) -> float:
    """Linear warm-up over `warmup_steps`, then cosine decay to `min_lr_ratio` at `steps` (0-based step)."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


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


def gather_across_ranks(x: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Concatenate `x` of every rank (rank order) keeping the gradient path to the local part."""
    if not ctx.distributed:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x), dim=0)


def checkpoint_path(out_dir: Path, step: int) -> Path:
    return out_dir / f"checkpoint-{step:07d}.pth"


def latest_checkpoint(out_dir: Path) -> Path | None:
    found = sorted((int(m.group(1)), p) for p in out_dir.glob("checkpoint-*.pth") if (m := CHECKPOINT_RE.search(p.name)))
    return found[-1][1] if found else None


def _save(obj: dict[str, Any], path: Path) -> None:
    with atomic_open(path, "wb") as handle:
        torch.save(obj, handle)


def _rng_states(ctx: DistContext) -> dict[str, Any]:
    states: dict[str, Any] = {"torch": torch.get_rng_state()}
    if ctx.device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(ctx.device)
    return states


def _restore_rng(states: dict[str, Any], ctx: DistContext) -> None:
    torch.set_rng_state(states["torch"])
    if ctx.device.type == "cuda" and "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"], ctx.device)


def _cache_identity(cache: FeatureCache) -> dict[str, Any]:
    return {"items_sha256": cache.index["items_sha256"], "num_rows": cache.num_rows, "classes": len(cache.classes)}


def trained_clip(path: str | os.PathLike, trust: bool = False) -> dict[str, Any] | None:
    """The CLIP (`ClipBundle.describe()`) a checkpoint of ours was trained for; None for files that do
    not record it (the authors' released weights). InputError for a file that cannot be read safely."""
    obj = load_torch_file(path, "aggregator checkpoint", trust=trust)
    clip = obj.get("clip") if isinstance(obj, dict) else None
    return clip if isinstance(clip, dict) else None


# what a resume restores, with the check of its type: (check, what it must be)
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
        raise InputError(f"{path}: not a training checkpoint of tools/train_visual_aggregator.py (cannot resume from it)")
    if state.get("clip") != cache.clip:
        raise InputError(f"{path}: trained on CLIP {describe_clip(state.get('clip'))} features, the cache holds {describe_clip(cache.clip)}")
    if state.get("cache") != _cache_identity(cache):
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


def _metrics_step(line: bytes) -> float:
    """The step of a metrics line; infinity for a line that is not a complete record."""
    try:
        step = orjson.loads(line).get("step")
    except (orjson.JSONDecodeError, AttributeError):
        return math.inf
    return step if isinstance(step, int) else math.inf


def _rewrite_metrics(path: Path, upto_step: int) -> None:
    """Keep the metric lines of steps <= `upto_step` (those after it, and a line torn by a kill, belong
    to the interrupted run)."""
    if not path.is_file():
        return
    kept = [line for line in path.read_bytes().splitlines() if _metrics_step(line) <= upto_step]
    with atomic_open(path, "wb") as handle:
        handle.write(b"".join(line + b"\n" for line in kept))


def _open_metrics(path: Path, resumed: bool) -> IO[bytes]:
    """metrics.jsonl for appending after a resume, else a clean log (an earlier run without checkpoints is dropped)."""
    try:
        return open(path, "ab" if resumed else "wb")
    except OSError as exc:
        raise output_error(path, exc) from None


def _log_metrics(handle: IO[bytes], record: dict[str, Any]) -> None:
    try:
        handle.write(dumps_json(record) + b"\n")
        handle.flush()
    except OSError as exc:
        raise output_error(handle.name, exc) from None


@dataclass
class TrainResult:
    final_path: Path
    steps_run: int
    first_loss: float | None
    last_loss: float | None


def train(
    cache: FeatureCache,
    out_dir: str | os.PathLike,
    config: TrainConfig,
    ctx: DistContext,
    checkpoint_every: int = 1000,
    resume: str | os.PathLike | None = None,
    strict: bool = False,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    command: str = "",
) -> TrainResult:
    """Train from `cache` into `out_dir` (checkpoints, metrics.jsonl, the final visual_aggregator.pth).

    The final file is `{"state_dict": aggregator weights, "config", "clip", "step", ...}`, loadable
    by `VisualAggregator.from_checkpoint(path, num_layers=config.num_layers)`.
    `on_step` gets each step's metrics dict (on every rank; the tool shows them on rank 0).
    """
    config.check()
    out = Path(out_dir)
    if ctx.is_main:
        check_output_dir(out)
    if config.batch_classes % ctx.world_size:
        raise InputError(f"--batch-classes {config.batch_classes} is not divisible by the {ctx.world_size} ranks")
    classes = eligible_classes(cache, 2 * config.k_max, strict)
    sampler = EpisodeSampler(cache, classes, config)

    model = build_model(config, cache.dim).to(ctx.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, config))
    start = 0
    if resume is not None:
        state = load_resume(Path(resume), config, cache)
        try:
            model.load_state_dict(state["state_dict"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            _restore_rng(state["rng"], ctx)
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"{resume}: cannot resume from it ({reason[:200]})") from None
        start = int(state["step"])
        log.info("resumed from %s at step %d", resume, start)
    if ctx.is_main:  # every input is checked: only now is anything written
        try:
            out.mkdir(exist_ok=True)
        except OSError as exc:
            raise output_error(out, exc) from None
        if resume is not None:
            _rewrite_metrics(out / METRICS_NAME, start)
    train_model: torch.nn.Module = model
    if ctx.distributed:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None
        )
    per_rank = config.batch_classes // ctx.world_size
    part = slice(ctx.rank * per_rank, (ctx.rank + 1) * per_rank)
    meta = {"clip": cache.clip, "cache": _cache_identity(cache), "config": dataclasses.asdict(config)}

    def fetch(step: int) -> tuple[Episode, np.ndarray]:
        episode = sampler.sample(step)
        return episode, load_episode(cache, episode, part)

    def save_training(step: int) -> None:
        _save({
            "format": TRAIN_FORMAT, "state_dict": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "step": step, "rng": _rng_states(ctx),
            "world_size": ctx.world_size, **meta,
        }, checkpoint_path(out, step))

    first_loss = last_loss = None
    metrics = _open_metrics(out / METRICS_NAME, resumed=resume is not None) if ctx.is_main else None
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        pending = pool.submit(fetch, start) if start < config.steps else None
        for step in range(start, config.steps):
            t0 = time.perf_counter()
            episode, features = pending.result()
            pending = pool.submit(fetch, step + 1) if step + 1 < config.steps else None
            x = torch.from_numpy(features).to(ctx.device, non_blocking=True)
            t_load = time.perf_counter() - t0
            set_a, set_b = embed_pair(train_model, x, episode.split)
            a = gather_across_ranks(set_a, ctx)
            p = gather_across_ranks(set_b, ctx)
            loss = symmetric_info_nce(a, p, config.temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            lr = optimizer.param_groups[0]["lr"]
            optimizer.step()
            scheduler.step()
            loss_value = float(loss.detach())
            dt = time.perf_counter() - t0
            record = {
                "step": step + 1, "loss": loss_value, "lr": lr, "k_a": episode.k_a, "k_b": episode.k_b,
                "episodes_per_s": config.batch_classes / dt,
                "embeddings_per_s": episode.rows.size / dt,
                "loader_share": t_load / dt, "step_s": dt,
            }
            first_loss = loss_value if first_loss is None else first_loss
            last_loss = loss_value
            if metrics is not None:
                _log_metrics(metrics, record)
            if on_step is not None:
                on_step(record)
            if ctx.is_main and checkpoint_every > 0 and (step + 1) % checkpoint_every == 0 and step + 1 < config.steps:
                save_training(step + 1)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if metrics is not None:
            metrics.close()
    final = out / FINAL_NAME
    if ctx.is_main:
        save_training(config.steps)
        _save({"format": "mmovod-visual-aggregator", "state_dict": model.state_dict(), "step": config.steps,
               "num_layers": config.num_layers, "command": command, **meta}, final)
    if ctx.distributed:
        dist.barrier()
    return TrainResult(final, config.steps - start, first_loss, last_loss)


def train_on_cache(
    cache_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: TrainConfig,
    *,
    clip_model: str | None = None,
    pretrained: str | None = None,
    device: str | None = None,
    checkpoint_every: int = 1000,
    resume: str | None = None,
    strict: bool = False,
    command: str = "",
) -> TrainResult | None:
    """Check the inputs, join the torchrun group (if any) and `train` on the cache at `cache_dir` with
    a progress bar on the main rank. A cache of another CLIP than `clip_model`/`pretrained` (when
    given) is refused; `resume` may be "latest" (the newest checkpoint in `out_dir`).
    Returns the result on the main rank, None on the others."""
    config.check()
    check_output_dir(out_dir)
    cache = FeatureCache(cache_dir)
    check_cache_clip(cache, clip_model, pretrained)
    if resume == "latest":
        resume = latest_checkpoint(Path(out_dir))
        if resume is None:
            raise InputError(f"{out_dir}: --resume latest found no checkpoint-*.pth")
    elif resume is None and (earlier := latest_checkpoint(Path(out_dir))) is not None:
        raise InputError(f"{out_dir}: holds {earlier.name} of an earlier run; continue it with --resume latest, "
                         "or train into a new --out")
    ctx = init_distributed(device)
    bars: list[tqdm] = []

    def show(record: dict) -> None:
        if not bars:  # created at the first step, after every input check has passed
            bars.append(tqdm(total=config.steps, initial=record["step"] - 1, desc="train aggregator", unit="step",
                             disable=not ctx.is_main))
        bar = bars[0]
        bar.update(1)
        bar.set_postfix(loss=f"{record['loss']:.3f}", k=f"{record['k_a']}/{record['k_b']}", ep_s=f"{record['episodes_per_s']:.0f}",
                        emb_s=f"{record['embeddings_per_s']:.0f}", load=f"{record['loader_share']:.0%}")

    try:
        result = train(cache, out_dir, config, ctx, checkpoint_every=checkpoint_every, resume=resume,
                       strict=strict, on_step=show, command=command)
    finally:
        for bar in bars:
            bar.close()
        shutdown(ctx)
    return result if ctx.is_main else None
