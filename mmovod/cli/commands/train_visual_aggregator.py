"""Train the MM-OVOD visual aggregator on cached CLIP features (tools/cache_clip_features.py).

Each step draws --batch-classes classes, set sizes K_a and K_b in [--k-min, --k-max] (--k-pairing),
and K_a + K_b distinct cached images per class. The aggregator turns the K_a exemplars of each class
into one row; the K_b other images stay raw CLIP embeddings (queries, as a detector's region
embeddings are) and are classified against the rows of every class of the batch by cosine times
--logit-scale, with cross-entropy. So the rows live in CLIP's image space: a detector can compare them
with region embeddings, and they fuse with text rows. AdamW with linear warm-up and cosine decay.
No image is decoded here.

Writes into --out-dir: checkpoint-<step>.pth every --checkpoint-every steps (model, optimiser,
scheduler, step, RNG states, config; --resume continues exactly, --resume latest after Ctrl-C),
metrics.jsonl (one line per step: loss, lr, K_a, K_b, episodes/s, embeddings/s, loader share), and
visual_aggregator.pth ({"state_dict": ...}) which tools/generate_vision_classifier_agg.py --load-path loads.

Multi-GPU / multi-machine: launch with torchrun (DDP; --batch-classes is the global batch):
  torchrun --nproc_per_node 8 tools/train_visual_aggregator.py --cache datasets/imagenet/clip_cache_train --out-dir checkpoints/visual_aggregator/own

Example:
  python tools/train_visual_aggregator.py --cache datasets/imagenet/clip_cache_train \\
      --out-dir checkpoints/visual_aggregator/own --clip_model ViT-B/32
"""
from __future__ import annotations

import argparse
from typing import Sequence

from mmovod.aggregator.train_config import K_PAIRINGS, VIEW_SAMPLINGS, TrainConfig
from mmovod.cli.flags import add_aliased_arg, int_at_least, make_parser
from mmovod.cli.tool_runner import run_tool


def get_parser() -> argparse.ArgumentParser:
    parser = make_parser(__doc__)
    d = TrainConfig()
    parser.add_argument("--cache", required=True, help="feature cache folder written by tools/cache_clip_features.py")
    add_aliased_arg(parser, "--out-dir", "--out", "out_dir", required=True, help="folder for checkpoints, metrics.jsonl and visual_aggregator.pth (its parent must exist)")
    parser.add_argument("--clip_model", "--clip-model", dest="clip_model", default=None,
                        help="CLIP model the aggregator is for; a cache made with another one is refused (unset: not checked)")
    parser.add_argument("--pretrained", default=None, help="CLIP weights the aggregator is for (checked like --clip_model)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu; "
                                                       "under torchrun each rank takes cuda:<LOCAL_RANK>)")
    episode = parser.add_argument_group("episodes")
    episode.add_argument("--batch-classes", type=int_at_least(1), default=d.batch_classes, help="classes per step (global, over all ranks)")
    episode.add_argument("--k-min", type=int_at_least(1), default=d.k_min, help="smallest exemplar-set size K")
    episode.add_argument("--k-max", type=int_at_least(1), default=d.k_max, help="largest K; classes need 2 x K-max images")
    episode.add_argument("--k-pairing", choices=K_PAIRINGS, default=d.k_pairing,
                         help="K of the second set: drawn independently from the range, or the same as the first")
    episode.add_argument("--view-sampling", choices=VIEW_SAMPLINGS, default=d.view_sampling,
                         help="an image enters a set as all its cached views (like the inference tool with --tta) or one random view")
    episode.add_argument("--logit-scale", type=float, default=d.logit_scale,
                         help="scale of the cosines in the loss: the CLIP's own logit scale (100 for OpenAI's and "
                              "open_clip's trained CLIPs; the demo world's CLIP: 15)")
    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--steps", type=int_at_least(1), default=d.steps, help="training steps (may be raised when resuming)")
    optim.add_argument("--lr", type=float, default=d.lr, help="AdamW peak learning rate")
    optim.add_argument("--weight-decay", type=float, default=d.weight_decay, help="AdamW weight decay")
    optim.add_argument("--warmup-steps", type=int_at_least(1), default=d.warmup_steps, help="linear warm-up steps")
    optim.add_argument("--min-lr-ratio", type=float, default=d.min_lr_ratio, help="cosine decay floor, as a fraction of --lr")
    optim.add_argument("--grad-clip", type=float, default=d.grad_clip, help="gradient-norm clip (0: off)")
    parser.add_argument("--num-layers", type=int_at_least(1), default=d.num_layers, help="transformer layers of the aggregator")
    parser.add_argument("--seed", type=int_at_least(0), default=d.seed, help="seed of the initial weights and of every episode")
    parser.add_argument("--checkpoint-every", type=int_at_least(0), default=1000, help="write a resumable checkpoint every N steps (0: only at the end)")
    parser.add_argument("--resume", default=None, help="training checkpoint to continue from, or 'latest' (newest in --out-dir)")
    parser.add_argument("--strict", action="store_true", help="fail on classes with fewer than 2 x K-max images instead of skipping them")
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        steps=args.steps, batch_classes=args.batch_classes, k_min=args.k_min, k_max=args.k_max,
        logit_scale=args.logit_scale, lr=args.lr, weight_decay=args.weight_decay, warmup_steps=args.warmup_steps,
        min_lr_ratio=args.min_lr_ratio, grad_clip=args.grad_clip, num_layers=args.num_layers, seed=args.seed,
        k_pairing=args.k_pairing, view_sampling=args.view_sampling,
    )


def run(args: argparse.Namespace) -> None:
    from mmovod.aggregator.training import train_on_cache

    config = config_from_args(args)
    result = train_on_cache(args.cache, args.out_dir, config, clip_model=args.clip_model, pretrained=args.pretrained,
                            device=args.device, checkpoint_every=args.checkpoint_every, resume=args.resume,
                            strict=args.strict, command=args.command_line)
    if result is not None:
        if result.first_loss is not None:
            print(f"loss: first step {result.first_loss:.4f}, last step {result.last_loss:.4f} ({result.steps_run} steps run)")
        print(f"wrote {result.final_path} (load with --aggregator {result.final_path} --num-layers {config.num_layers})")


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    return run_tool(get_parser(), run, argv, prog)
