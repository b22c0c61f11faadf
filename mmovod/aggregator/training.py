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
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from mmovod.aggregator.objective import exemplar_rows, gather_across_ranks, query_embeddings, query_loss
from mmovod.aggregator.episodes import Episode, EpisodeSampler, eligible_classes, load_episode
from mmovod.aggregator.metrics_log import METRICS_NAME, log_metrics, logged_steps, open_metrics, trim_metrics
from mmovod.aggregator.model import CLIP_SPACE_OBJECTIVE, build_model
from mmovod.aggregator.train_config import TrainConfig, lr_factor
from mmovod.aggregator.train_state import (CHECKPOINT_RE, cache_identity, checkpoint_path, latest_checkpoint,
                                           load_resume, restore, save_checkpoint, save_torch)
from mmovod.features.feature_cache import FeatureCache, check_cache_clip
from mmovod.features.distributed import DistContext, init_distributed, shutdown
from mmovod.io.atomic import check_output_dir, output_error
from mmovod.io.errors import InputError, interruption_keeps

log = logging.getLogger(__name__)

FINAL_NAME = "visual_aggregator.pth"
RESUME_LATEST = "run the same command with --resume latest to continue from there"


@dataclass
class TrainResult:
    final_path: Path
    steps_run: int
    first_loss: float | None
    last_loss: float | None


def training_kept(out: Path, steps: int) -> str | tuple[str, str] | None:
    """What an interrupted run leaves in `out` (for `interruption_keeps`): its newest checkpoint, from
    which `--resume latest` continues, and the metrics log; None when neither holds a step."""
    checkpoint = latest_checkpoint(out)
    logged = logged_steps(out / METRICS_NAME)
    if checkpoint is None:
        return ((f"{out / METRICS_NAME} (steps 1 to {logged}) is kept, but no checkpoint to resume from",
                 "run the same command again to start over") if logged else None)
    step = int(CHECKPOINT_RE.search(checkpoint.name).group(1))
    return f"{checkpoint.name} (step {step} of {steps}) and {METRICS_NAME} (to step {logged}) are kept in {out}"


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
        start = restore(load_resume(Path(resume), config, cache), model, optimizer, scheduler, ctx, Path(resume))
        log.info("resumed from %s at step %d", resume, start)
    if ctx.is_main:  # every input is checked: only now is anything written
        try:
            out.mkdir(exist_ok=True)
        except OSError as exc:
            raise output_error(out, exc) from None
        if resume is not None:
            trim_metrics(out / METRICS_NAME, start)
    train_model: torch.nn.Module = model
    if ctx.distributed:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None
        )
    per_rank = config.batch_classes // ctx.world_size
    part = slice(ctx.rank * per_rank, (ctx.rank + 1) * per_rank)
    meta = {"clip": cache.clip, "cache": cache_identity(cache), "config": dataclasses.asdict(config), "objective": CLIP_SPACE_OBJECTIVE}

    def fetch(step: int) -> tuple[Episode, np.ndarray]:
        episode = sampler.sample(step)
        return episode, load_episode(cache, episode, part)

    def save_training(step: int) -> None:
        save_checkpoint(checkpoint_path(out, step), model, optimizer, scheduler, step, ctx, meta)

    with interruption_keeps(lambda: training_kept(out, config.steps), RESUME_LATEST):  # Ctrl-C: says what is kept
        first_loss = last_loss = None
        metrics = open_metrics(out / METRICS_NAME, resumed=resume is not None) if ctx.is_main else None
        pool = ThreadPoolExecutor(max_workers=1)
        try:
            pending = pool.submit(fetch, start) if start < config.steps else None
            for step in range(start, config.steps):
                t0 = time.perf_counter()
                episode, features = pending.result()
                pending = pool.submit(fetch, step + 1) if step + 1 < config.steps else None
                x = torch.from_numpy(features).to(ctx.device, non_blocking=True)
                t_load = time.perf_counter() - t0
                rows = gather_across_ranks(exemplar_rows(train_model, x, episode.split), ctx)
                queries = gather_across_ranks(query_embeddings(x, episode.split, episode.k_b), ctx)
                loss = query_loss(rows, queries, config.logit_scale)  # the global batch's loss on every rank
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
                    log_metrics(metrics, record)
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
            save_torch({"format": "mmovod-visual-aggregator", "state_dict": model.state_dict(), "step": config.steps,
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
                         "or train into a new --out-dir")
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
