"""Fuse two classifiers into a multi-modal one: normalise(A) + normalise(B), normalised again.

Rows are L2-normalised separately, added, and the sum is L2-normalised (unless --no-final-norm).
Output float32 (C, D), with a .npy.json provenance sidecar.

Example:
  python tools/norm_feat_sum_norm.py \
    --feat1-path datasets/metadata/lvis_gpt3_text-davinci-002_features_own.npy \
    --feat2-path datasets/metadata/lvis_image_exemplar_features_agg_K-005_own.npy \
    --out-path datasets/metadata/lvis_multi-modal_agg_K-005_own.npy
"""
from __future__ import annotations

import argparse
from typing import Sequence

from mmovod.cli.flags import make_parser
from mmovod.cli.tool_runner import run_tool


def get_parser() -> argparse.ArgumentParser:
    parser = make_parser(__doc__)
    parser.add_argument("--feat1-path", required=True, help="first classifier .npy (C, D), e.g. the text classifier")
    parser.add_argument("--feat2-path", required=True, help="second classifier .npy (C, D), e.g. the vision classifier")
    parser.add_argument("--out-path", required=True, help="output .npy (float32, C x D)")
    parser.add_argument("--no-final-norm", dest="final_norm", action="store_false",
                        help="skip the last normalisation: reproduces the authors' published "
                             "lvis_multi-modal_{avg,agg}_K-005_author.npy exactly")
    return parser


def run(args: argparse.Namespace) -> None:
    from mmovod.classifiers.fusion import fuse_classifier_files

    classes, dims = fuse_classifier_files(args.feat1_path, args.feat2_path, args.out_path, args.final_norm,
                                          command=args.command_line)
    print(f"fused {classes} classes x {dims} dims -> {args.out_path}")


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    return run_tool(get_parser(), run, argv, prog)
