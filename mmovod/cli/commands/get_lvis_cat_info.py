"""Count images and instances per LVIS category (the category info used by the federated loss).

Writes <ann without .json>_cat_info.json: the list of categories, each with image_count (distinct
images annotated with it) and instance_count (its annotations).

Example:
  python tools/get_lvis_cat_info.py --ann datasets/lvis/lvis_v1_train.json
  (writes datasets/lvis/lvis_v1_train_cat_info.json)
"""
from __future__ import annotations

import argparse
from typing import Sequence

from mmovod.cli.flags import hidden_alias, make_parser
from mmovod.cli.tool_runner import run_tool


def get_parser() -> argparse.ArgumentParser:
    parser = make_parser(__doc__)
    parser.add_argument("--ann", required=True, help="LVIS-format annotation JSON")
    parser.add_argument("--out-path", default=None, help="output path (default: <ann without .json>_cat_info.json)")
    hidden_alias(parser, "--out", "out_path")
    parser.add_argument("--add_freq", action="store_true",
                        help="recompute 'frequency' from image_count: r below --r_thresh, c below --c_thresh, else f")
    parser.add_argument("--r_thresh", type=int, default=10, help="image_count below which a category is rare")
    parser.add_argument("--c_thresh", type=int, default=100, help="image_count below which a category is common")
    parser.add_argument("--bypass", action="store_true",
                        help="count from each image's pos_category_ids instead of annotations "
                             "(image_count and instance_count both count images)")
    return parser


def run(args: argparse.Namespace) -> None:
    from mmovod.prep.lvis_annotations import write_category_info

    info, out = write_category_info(args.ann, args.out_path, args.add_freq, args.r_thresh, args.c_thresh, args.bypass)
    cats = info.categories
    print(f"{len(cats)} categories, {sum(c['instance_count'] for c in cats)} instances, "
          f"{sum(1 for c in cats if c['image_count'] == 0)} without any image")
    if info.frequency_totals:
        print("frequency totals: " + ", ".join(f"{k}={v}" for k, v in info.frequency_totals.items()))
    print(f"wrote {out}")


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    return run_tool(get_parser(), run, argv, prog)
