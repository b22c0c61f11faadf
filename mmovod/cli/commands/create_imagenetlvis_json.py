"""List the ImageNet-21K-P images of LVIS categories (IN-L) as an LVIS-format image-info file.

For each LVIS category whose WordNet id (wnid) names a folder under train/, val/ or
imagenet21k_small_classes/, every image in it becomes one record {id, file_name
("<split>/<wnid>/<file>"), pos_category_ids: [category id], width, height}. Sizes come from the
file headers with the EXIF orientation applied (no pixel decoding), read in parallel. Ids run 1..N
by category id, split, file name, so two runs write byte-identical files. Unreadable images are
skipped and reported (--strict: an error, nothing written). Categories get image_count.

Example:
  python tools/create_imagenetlvis_json.py --imagenet-path datasets/imagenet/imagenet21k_P \\
      --out-path datasets/imagenet/annotations/imagenet_lvis_image_info.json
"""
from __future__ import annotations

import argparse
from typing import Sequence

from mmovod.cli.flags import add_workers_arg, make_parser
from mmovod.cli.tool_runner import run_tool


def get_parser() -> argparse.ArgumentParser:
    parser = make_parser(__doc__)
    parser.add_argument("--imagenet-path", default="datasets/imagenet/imagenet21k_P",
                        help="the imagenet21k_P folder (or the folder holding it)")
    parser.add_argument("--lvis-meta-path", default="datasets/lvis/lvis_v1_val.json",
                        help="LVIS annotation file whose categories are used")
    parser.add_argument("--out-path", default="datasets/imagenet/annotations/imagenet_lvis_image_info.json",
                        help="output JSON (its folder must exist)")
    add_workers_arg(parser, None, "processes reading image headers (unset: every core this process may use)")
    parser.add_argument("--strict", action="store_true", help="fail, writing nothing, if any image is unreadable")
    return parser


def run(args: argparse.Namespace) -> None:
    from mmovod.prep.imagenet_lvis import write_imagenet_lvis

    result, out = write_imagenet_lvis(args.imagenet_path, args.lvis_meta_path, args.out_path, args.workers, args.strict)
    doc = result.document
    print(f"{len(doc['images'])} images of {result.categories_with_images} of {len(doc['categories'])} "
          f"categories; {len(result.skipped)} skipped")
    print(f"wrote {out}")


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    return run_tool(get_parser(), run, argv, prog)
