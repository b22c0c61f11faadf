"""Image-exemplar classifier with the trained visual aggregator: per class, the aggregator maps
the raw CLIP image embeddings of its K exemplars x --num-augs views to one 512-d vector.

Each exemplar is cropped (box with 0.2 context, made square; whole image for ImageNet). With --tta
every view is a seeded TTA view; without it the plain crop is encoded once and repeated --num-augs
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
import logging
import sys
from typing import Sequence

import torch

from mmovod.aggregator import VisualAggregator
from mmovod.arrays import save_classifier
from mmovod.atomic import check_output_path
from mmovod.cli import make_parser, run_tool
from mmovod.clip_model import add_clip_args, load_clip
from mmovod.crops import AGGREGATOR_CONTEXT
from mmovod.errors import InputError
from mmovod.exemplar_encoding import free_text_tower
from mmovod.exemplar_list import check_images_exist, load_exemplar_list
from mmovod.image_roots import add_image_root_args, image_roots_from_args
from mmovod.vision_classifier import add_exemplar_view_args, aggregated_classifier, provenance

log = logging.getLogger(__name__)


def get_parser() -> argparse.ArgumentParser:
    parser = make_parser(__doc__)
    parser.add_argument("--exemplar-list", required=True,
                        help="exemplar list: JSON list over categories (ascending id) of lists of exemplar records")
    parser.add_argument("--out-path", required=True, help="output .npy (float16, classes x 512)")
    parser.add_argument("--load-path", required=True, help="visual aggregator checkpoint (.pth)")
    parser.add_argument("--mapping_type", choices=["transformer"], default="transformer",
                        help="aggregator architecture (only the released transformer exists)")
    parser.add_argument("--num-layers", type=int, default=4, help="transformer layers of the checkpoint")
    parser.add_argument("--tta", action="store_true", help="augment every view (otherwise views are the plain crop)")
    parser.add_argument("--gpu", type=int, default=None,
                        help="CUDA device index (like --device cuda:N); the CPU is used when there is no GPU; "
                             "default: --device, else the current CUDA device, else the CPU")
    add_exemplar_view_args(parser, num_workers=4)
    add_image_root_args(parser)
    add_clip_args(parser)
    return parser


def device_from_flags(device: str | None, gpu: int | None) -> str | None:
    """--device wins; --gpu N means cuda:N when CUDA is present and the CPU otherwise."""
    if device or gpu is None:
        return device
    if not torch.cuda.is_available():
        log.info("--gpu %d: no CUDA device on this machine, running on the CPU", gpu)
        return "cpu"
    if not 0 <= gpu < torch.cuda.device_count():
        raise InputError(f"--gpu {gpu}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return f"cuda:{gpu}"


def run(args: argparse.Namespace) -> None:
    check_output_path(args.out_path)
    exemplars = load_exemplar_list(args.exemplar_list)
    aggregator = VisualAggregator.from_checkpoint(args.load_path, num_layers=args.num_layers)
    roots = image_roots_from_args(args)
    check_images_exist(exemplars, roots, args.skip_bad)
    bundle = load_clip(args.clip_model, args.pretrained, device_from_flags(args.device, args.gpu))
    free_text_tower(bundle.model)
    classifier, encoded = aggregated_classifier(bundle, aggregator, exemplars, roots, args, AGGREGATOR_CONTEXT)
    save_classifier(args.out_path, classifier, provenance(
        bundle, exemplars, args.exemplar_list, roots, encoded, context=AGGREGATOR_CONTEXT, num_augs=args.num_augs,
        tta=args.tta, seed=args.seed, aggregator=args.load_path, num_layers=args.num_layers,
        combine="visual aggregator over the raw CLIP image embeddings of K x num_augs views"))
    print(f"{classifier.shape[0]} classes x {classifier.shape[1]} ({classifier.dtype}), "
          f"{len(encoded.skipped)} images skipped; wrote {args.out_path}")


def main(argv: Sequence[str] | None = None) -> int:
    return run_tool(get_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
