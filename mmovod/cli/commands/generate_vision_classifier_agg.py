"""Image-exemplar classifier with the trained visual aggregator: per class, the aggregator maps
the raw CLIP image embeddings of its K exemplars x --views (the guide's --num-augs) views to one 512-d vector.

Each exemplar is cropped (box with 0.2 context, made square; whole image for ImageNet). With --tta
every view is a seeded TTA view; without it the plain crop is encoded once and repeated --views
times. The aggregator checkpoint is the authors' release (a dict with state_dict, or a bare state
dict), loaded with strict key checking. Writes float16 (C, 512), like the authors' files, plus a
.npy.json provenance sidecar.

Example:
  python tools/generate_vision_classifier_agg.py --exemplar-list datasets/metadata/lvis_image_exemplar_dict_K-005_own.json \\
      --out-path datasets/metadata/lvis_image_exemplar_features_agg_K-005_own.npy --num-augs 5 --tta \\
      --load-path checkpoints/visual_aggregator/visual_aggregator_ckpt_4_transformer.pth
"""
from __future__ import annotations

import argparse
from typing import Sequence

from mmovod.classifiers.recipes import AGGREGATOR_VIEWS
from mmovod.cli.flags import (IMAGE_BATCH_HELP, TRUST_CHECKPOINT_HELP, add_aggregator_arg, add_clip_args, add_exemplar_view_args,
                              add_image_root_args, clip_spec_from_args, image_roots_from_args, int_at_least, make_parser,
                              view_spec_from_args)
from mmovod.cli.tool_runner import run_tool


def get_parser() -> argparse.ArgumentParser:
    parser = make_parser(__doc__)
    parser.add_argument("--exemplar-list", required=True,
                        help="exemplar list: JSON list over categories (ascending id) of lists of exemplar records")
    parser.add_argument("--out-path", required=True, help="output .npy (float16, classes x 512)")
    add_aggregator_arg(parser, "visual aggregator checkpoint (.pth)", required=True)
    parser.add_argument("--trust-checkpoint", action="store_true", help=TRUST_CHECKPOINT_HELP)
    parser.add_argument("--mapping_type", choices=["transformer"], default="transformer",
                        help="aggregator architecture (only the released transformer exists)")
    parser.add_argument("--num-layers", type=int_at_least(1), default=4, help="transformer layers of the checkpoint")
    parser.add_argument("--tta", action="store_true", help="augment every view (otherwise views are the plain crop)")
    parser.add_argument("--gpu", type=int, default=None,
                        help="CUDA device index (like --device cuda:N); the CPU is used when there is no GPU; "
                             "default: --device, else the current CUDA device, else the CPU")
    add_exemplar_view_args(parser, workers=AGGREGATOR_VIEWS.workers)
    add_image_root_args(parser)
    add_clip_args(parser, batch_size=None, batch_help=IMAGE_BATCH_HELP)
    return parser


def run(args: argparse.Namespace) -> None:
    from mmovod.classifiers.vision import write_aggregated_classifier
    from mmovod.clip.factory import device_from_flags

    clip = clip_spec_from_args(args, device=device_from_flags(args.device, args.gpu))
    views = view_spec_from_args(args, context=AGGREGATOR_VIEWS.context, tta=args.tta)
    print(write_aggregated_classifier(args.exemplar_list, args.out_path, clip, image_roots_from_args(args),
                                      args.aggregator, args.num_layers, views, command=args.command_line,
                                      trust_checkpoint=args.trust_checkpoint))


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    return run_tool(get_parser(), run, argv, prog)
