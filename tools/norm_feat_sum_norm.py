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
import sys
from typing import Sequence

from mmovod.arrays import load_matrix, read_sidecar, save_classifier
from mmovod.cli import make_parser, run_tool
from mmovod.errors import InputError
from mmovod.fusion import check_finite_nonzero, fuse_classifiers


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
    feat1, feat2 = load_matrix(args.feat1_path), load_matrix(args.feat2_path)
    if feat1.shape != feat2.shape:
        raise InputError(f"{args.feat2_path}: shape {feat2.shape} does not match {args.feat1_path} {feat1.shape}")
    check_finite_nonzero(feat1, args.feat1_path)
    check_finite_nonzero(feat2, args.feat2_path)
    fused = fuse_classifiers(feat1, feat2, args.final_norm)
    save_classifier(args.out_path, fused, {
        "kind": "multi-modal fusion",
        "normalisation": "l2(l2(feat1) + l2(feat2))" if args.final_norm else "l2(feat1) + l2(feat2)",
        "sources": {
            "feat1": {"path": str(args.feat1_path), "sidecar": read_sidecar(args.feat1_path)},
            "feat2": {"path": str(args.feat2_path), "sidecar": read_sidecar(args.feat2_path)},
        },
    })
    print(f"fused {fused.shape[0]} classes x {fused.shape[1]} dims -> {args.out_path}")


def main(argv: Sequence[str] | None = None) -> int:
    return run_tool(get_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
