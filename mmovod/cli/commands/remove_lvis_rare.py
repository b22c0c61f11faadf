"""Remove the annotations of LVIS rare categories (the open-vocabulary LVIS training set).

Every annotation whose category has frequency 'r' is dropped; images, categories and all other
keys are kept unchanged.

Example:
  python tools/remove_lvis_rare.py --ann datasets/lvis/lvis_v1_train.json
  (writes datasets/lvis/lvis_v1_train_norare.json)
"""
from __future__ import annotations

import argparse
from typing import Sequence

from mmovod.cli.flags import hidden_alias, make_parser
from mmovod.cli.tool_runner import run_tool


def get_parser() -> argparse.ArgumentParser:
    parser = make_parser(__doc__)
    parser.add_argument("--ann", required=True, help="LVIS-format annotation JSON to filter")
    parser.add_argument("--out-path", default=None, help="output path (default: <ann without .json>_norare.json)")
    hidden_alias(parser, "--out", "out_path")
    return parser


def run(args: argparse.Namespace) -> None:
    from mmovod.prep.lvis_annotations import remove_rare_annotations

    result = remove_rare_annotations(args.ann, args.out_path)
    print(f"annotations before: {result.annotations_before}")
    print(f"annotations after:  {result.annotations_after} "
          f"({result.annotations_before - result.annotations_after} removed; {result.rare_categories} categories are rare)")
    print(f"wrote {result.path}")


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    return run_tool(get_parser(), run, argv, prog)
