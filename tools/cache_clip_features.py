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
view v of image e of class c seeded by (--seed, c, e, v)). Writes into --out: index.json (CLIP
model, settings, classes and their row ranges), items.txt (one line per row) and shard-NNNNN.npy
(float16, rows x views x dim, raw embeddings). A re-run skips finished shards, so an interrupted
run resumes; a folder made with another CLIP model or other settings is refused.

Many GPUs or machines: launch with torchrun; rank r encodes shards r, r+W, ... (gloo on CPU, NCCL on
GPU); the shards are the same as from one process.
  torchrun --nproc_per_node 8 tools/cache_clip_features.py --image-root datasets/imagenet/imagenet21k_P/train \\
      --lvis-ann datasets/lvis/lvis_v1_val.json --out datasets/imagenet/clip_cache_train --views 5 --tta

Example:
  python tools/cache_clip_features.py --image-root datasets/imagenet/imagenet21k_P/train \\
      --lvis-ann datasets/lvis/lvis_v1_val.json --out datasets/imagenet/clip_cache_train --clip_model ViT-B/32
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from mmovod.cli.run import make_parser, run_tool
from mmovod.clip.factory import add_clip_args
from mmovod.clip.crops import AGGREGATOR_CONTEXT
from mmovod.aggregator.cache_builder import cache_clip_features
from mmovod.readers.image_roots import add_image_root_args, image_roots_from_args

DEFAULT_SHARD_SIZE = 32768


def get_parser() -> argparse.ArgumentParser:
    parser = make_parser(__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--image-root", default=None, help="class-folder tree: <root>/<class>/<image files>")
    source.add_argument("--exemplar-dict", default=None, help="exemplar dictionary {synset: [records]} to crop and encode")
    parser.add_argument("--out", required=True, help="cache folder to create or resume (its parent must exist)")
    classes = parser.add_argument_group("classes")
    classes.add_argument("--classes", default=None, help="text file of class names (folder names or synsets) to keep (unset: all)")
    classes.add_argument("--exclude-classes", default=None, help="text file of class names to leave out (e.g. LVIS-rare wnids)")
    classes.add_argument("--lvis-ann", default=None,
                         help="LVIS annotation (or category) JSON whose rare categories are left out: their wnid folders "
                              "(--image-root) or synsets (--exemplar-dict)")
    classes.add_argument("--min-images", type=int, default=2,
                         help="classes with fewer images are skipped with a report (an error with --strict)")
    classes.add_argument("--strict", action="store_true", help="fail on empty or too-small classes instead of skipping them")
    views = parser.add_argument_group("views")
    views.add_argument("--views", type=int, default=1, help="views per image (more than 1 needs --tta)")
    views.add_argument("--tta", action="store_true", help="make every view a deterministic TTA view (as get_exemplars_tta)")
    views.add_argument("--seed", type=int, default=0, help="TTA seed")
    views.add_argument("--context", type=float, default=AGGREGATOR_CONTEXT,
                       help="box context of exemplar crops (--exemplar-dict); the aggregator tool's value")
    parser.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE, help="images per shard file (the unit of resuming)")
    parser.add_argument("--nw", type=int, default=4, help="DataLoader worker processes that decode and augment (0: in the main process)")
    add_clip_args(parser)
    add_image_root_args(parser)
    return parser


def run(args: argparse.Namespace) -> None:
    result = cache_clip_features(
        args.out, image_root=args.image_root, exemplar_dict=args.exemplar_dict, roots=image_roots_from_args(args),
        classes_file=args.classes, exclude_file=args.exclude_classes, lvis_ann=args.lvis_ann,
        min_images=args.min_images, strict=args.strict, views=args.views, tta=args.tta, seed=args.seed,
        context=args.context, shard_size=args.shard_size, batch_size=args.batch_size, workers=args.nw,
        clip_model=args.clip_model, pretrained=args.pretrained, device=args.device,
    )
    if result is not None:
        print(f"classes: {result.classes}, images: {result.rows}, shards: {result.shards} "
              f"(this rank encoded {result.encoded}, {result.skipped} were already finished)")
        print(f"wrote {result.root}")


def main(argv: Sequence[str] | None = None) -> int:
    return run_tool(get_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
