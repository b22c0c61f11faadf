"""Image-exemplar classifier by averaging: per class, the mean raw CLIP image embedding of its
K exemplars x --num-augs TTA views.

Each exemplar is cropped (box with 0.4 context, made square; whole image for ImageNet), augmented
--num-augs times (random resized crop at 4x the model input, flip, colour jitter; seeded per view by
--seed, class, exemplar and view) and encoded by CLIP's image tower, batched across classes.
Writes float32 (C, D), not normalised, plus a .npy.json provenance sidecar.

Example:
  python tools/get_exemplars_tta.py --ann-path datasets/metadata/lvis_image_exemplar_dict_K-005_own.json \\
      --output-path datasets/metadata/lvis_image_exemplar_features_avg_K-005_own.npy --num-augs 5
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from mmovod.arrays import save_classifier
from mmovod.atomic import check_output_path
from mmovod.cli import make_parser, run_tool
from mmovod.clip_model import add_clip_args, load_clip
from mmovod.crops import TTA_CONTEXT
from mmovod.exemplar_encoding import free_text_tower
from mmovod.exemplar_list import check_images_exist, load_exemplar_list
from mmovod.image_roots import add_image_root_args, image_roots_from_args
from mmovod.vision_classifier import add_exemplar_view_args, average_classifier, provenance


def get_parser() -> argparse.ArgumentParser:
    parser = make_parser(__doc__)
    parser.add_argument("--ann-path", default="datasets/metadata/lvis_image_exemplar_dict_K-005_own.json",
                        help="exemplar list: JSON list over categories (ascending id) of lists of exemplar records")
    parser.add_argument("--output-path", default="datasets/metadata/lvis_image_exemplar_features_avg_K-005_own.npy",
                        help="output .npy (float32, classes x embed dim)")
    add_exemplar_view_args(parser, num_workers=8)
    add_image_root_args(parser)
    add_clip_args(parser)
    return parser


def run(args: argparse.Namespace) -> None:
    check_output_path(args.output_path)
    exemplars = load_exemplar_list(args.ann_path)
    roots = image_roots_from_args(args)
    check_images_exist(exemplars, roots, args.skip_bad)
    bundle = load_clip(args.clip_model, args.pretrained, args.device)
    free_text_tower(bundle.model)
    classifier, encoded = average_classifier(bundle, exemplars, roots, args, TTA_CONTEXT)
    save_classifier(args.output_path, classifier, provenance(
        bundle, exemplars, args.ann_path, roots, encoded, context=TTA_CONTEXT, num_augs=args.num_augs, tta=True,
        seed=args.seed, combine="mean of the raw CLIP image embeddings of K x num_augs views"))
    print(f"{classifier.shape[0]} classes x {classifier.shape[1]} ({classifier.dtype}), "
          f"{len(encoded.skipped)} images skipped; wrote {args.output_path}")


def main(argv: Sequence[str] | None = None) -> int:
    return run_tool(get_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
