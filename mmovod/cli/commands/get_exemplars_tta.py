"""Image-exemplar classifier by averaging: per class, the mean raw CLIP image embedding of its
K exemplars x --views (the guide's --num-augs) TTA views.

Each exemplar is cropped (box with 0.4 context, made square; whole image for ImageNet), augmented
--views times (random resized crop at 4x the model input, flip, colour jitter; seeded per view by
--seed, class, exemplar and view) and encoded by CLIP's image tower, batched across classes.
Writes float32 (C, D), not normalised, plus a .npy.json provenance sidecar.

Example:
  python tools/get_exemplars_tta.py --ann-path datasets/metadata/lvis_image_exemplar_dict_K-005_own.json \\
      --output-path datasets/metadata/lvis_image_exemplar_features_avg_K-005_own.npy --num-augs 5
"""
from __future__ import annotations

import argparse
from typing import Sequence

from mmovod.classifiers.recipes import AVERAGE_VIEWS
from mmovod.cli.flags import (IMAGE_BATCH_HELP, add_clip_args, add_exemplar_view_args, add_image_root_args,
                              clip_spec_from_args, hidden_alias, image_roots_from_args, make_parser,
                              view_spec_from_args)
from mmovod.cli.tool_runner import run_tool


def get_parser() -> argparse.ArgumentParser:
    parser = make_parser(__doc__)
    parser.add_argument("--exemplar-list", default="datasets/metadata/lvis_image_exemplar_dict_K-005_own.json",
                        help="exemplar list: JSON list over categories (ascending id) of lists of exemplar records")
    hidden_alias(parser, "--ann-path", "exemplar_list")
    parser.add_argument("--out-path", default="datasets/metadata/lvis_image_exemplar_features_avg_K-005_own.npy",
                        help="output .npy (float32, classes x embed dim)")
    hidden_alias(parser, "--output-path", "out_path")
    add_exemplar_view_args(parser, workers=AVERAGE_VIEWS.workers)
    add_image_root_args(parser)
    add_clip_args(parser, batch_size=None, batch_help=IMAGE_BATCH_HELP)
    return parser


def run(args: argparse.Namespace) -> None:
    from mmovod.classifiers.vision import write_average_classifier

    print(write_average_classifier(args.exemplar_list, args.out_path, clip_spec_from_args(args),
                                   image_roots_from_args(args),
                                   view_spec_from_args(args, context=AVERAGE_VIEWS.context, tta=True),
                                   command=args.command_line))


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    return run_tool(get_parser(), run, argv, prog)
