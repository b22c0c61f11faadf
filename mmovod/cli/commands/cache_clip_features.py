"""Encode labelled images with the CLIP image tower once, into a feature cache for aggregator training.

Sources (one of):
  --image-root DIR       a class-folder tree DIR/<class>/<images> (ImageNet-21K-P: imagenet21k_P/train);
                         whole images
  --exemplar-dict FILE   an exemplar dictionary {synset: [records]} (tools/collate_exemplar_dict.py);
                         records cropped exactly as the vision-classifier tools crop them (--context)
Classes can be restricted with --classes FILE and dropped with --exclude-classes FILE (one name per
line, e.g. only the LVIS-rare wnids for a held-out evaluation cache). --lvis-ann drops the LVIS-rare
classes (LVIS-base training): their wnid folders in a tree, their synsets in an exemplar dictionary.

Each image becomes --views views (with --tta: the deterministic TTA views of the exemplar tools,
view v of image e of class c seeded by (--seed, c, e, v)). Writes into --out-dir: index.json (CLIP
model, settings, classes and their row ranges), items.txt (one line per row) and shard-NNNNN.npy
(float16, rows x views x dim, raw embeddings). A re-run skips finished shards, so an interrupted
run resumes; a folder made with another CLIP model or other settings is refused.

Many GPUs or machines: launch with torchrun; rank r encodes shards r, r+W, ... (gloo on CPU, NCCL on
GPU); the shards are the same as from one process.
  torchrun --nproc_per_node 8 tools/cache_clip_features.py --image-root datasets/imagenet/imagenet21k_P/train \\
      --lvis-ann datasets/lvis/lvis_v1_val.json --out-dir datasets/imagenet/clip_cache_train --views 5 --tta

Example:
  python tools/cache_clip_features.py --image-root datasets/imagenet/imagenet21k_P/train \\
      --lvis-ann datasets/lvis/lvis_v1_val.json --out-dir datasets/imagenet/clip_cache_train --clip_model ViT-B/32
"""
from __future__ import annotations

import argparse
from typing import Sequence

from mmovod.cli.flags import (IMAGE_BATCH_HELP, add_aliased_arg, add_clip_args, add_image_root_args,
                              add_view_order_arg, add_views_arg, add_workers_arg, clip_spec_from_args,
                              image_roots_from_args, int_at_least, make_parser, non_negative_float)
from mmovod.cli.tool_runner import run_tool
from mmovod.clip.crops import AGGREGATOR_CONTEXT
from mmovod.clip.specs import ViewSpec
from mmovod.features.feature_cache import DEFAULT_SHARD_SIZE


def get_parser() -> argparse.ArgumentParser:
    parser = make_parser(__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--image-root", default=None, help="class-folder tree: <root>/<class>/<image files>")
    source.add_argument("--exemplar-dict", default=None, help="exemplar dictionary {synset: [records]} to crop and encode")
    add_aliased_arg(parser, "--out-dir", "--out", "out_dir", required=True,
                    help="cache folder to create or resume (its parent must exist)")
    classes = parser.add_argument_group("classes")
    classes.add_argument("--classes", default=None, help="text file of class names (folder names or synsets) to keep (unset: all)")
    classes.add_argument("--exclude-classes", default=None, help="text file of class names to leave out (e.g. LVIS-rare wnids)")
    classes.add_argument("--lvis-ann", "--ann", dest="lvis_ann", default=None,
                         help="LVIS annotation (or category) JSON whose rare categories are left out: their wnid folders "
                              "(--image-root) or synsets (--exemplar-dict)")
    classes.add_argument("--min-images", type=int_at_least(1), default=2,
                         help="classes with fewer images are skipped with a report (an error with --strict)")
    classes.add_argument("--strict", action="store_true", help="fail on empty or too-small classes instead of skipping them")
    views = parser.add_argument_group("views")
    add_views_arg(views, 1, "views per image (more than 1 needs --tta)")
    views.add_argument("--tta", action="store_true", help="make every view a deterministic TTA view (as get_exemplars_tta)")
    views.add_argument("--seed", type=int_at_least(0), default=0, help="TTA seed")
    add_view_order_arg(views)
    views.add_argument("--context", type=non_negative_float, default=AGGREGATOR_CONTEXT,
                       help="box context of exemplar crops (--exemplar-dict); the aggregator tool's value")
    parser.add_argument("--shard-size", type=int_at_least(1), default=DEFAULT_SHARD_SIZE, help="images per shard file (the unit of resuming)")
    add_workers_arg(parser, 4, "DataLoader worker processes that decode and augment (0: in the main process)", "--nw")
    add_clip_args(parser, batch_size=None, batch_help=IMAGE_BATCH_HELP)
    add_image_root_args(parser)
    return parser


def run(args: argparse.Namespace) -> None:
    from mmovod.features.builder import ClassFilter, cache_clip_features

    class_filter = ClassFilter(args.classes, args.exclude_classes, args.lvis_ann, args.min_images, args.strict)
    views = ViewSpec(num_views=args.views, tta=args.tta, context=args.context, seed=args.seed, workers=args.workers,
                     order=args.view_order)
    result = cache_clip_features(args.out_dir, image_root=args.image_root, exemplar_dict=args.exemplar_dict,
                                 class_filter=class_filter, clip=clip_spec_from_args(args), views=views,
                                 roots=image_roots_from_args(args), shard_size=args.shard_size)
    if result is not None:
        print(f"classes: {result.classes}, images: {result.rows}, shards: {result.shards} "
              f"(this rank encoded {result.encoded}, {result.skipped} were already finished)")
        print(f"wrote {result.root}")


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    return run_tool(get_parser(), run, argv, prog)
