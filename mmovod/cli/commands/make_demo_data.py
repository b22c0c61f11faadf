"""Write the built-in demo dataset: a small, seeded tree in the layout of the datasets guide.

Example:
  python tools/make_demo_data.py --out-dir datasets/demo
  python tools/remove_lvis_rare.py --ann datasets/demo/lvis/lvis_v1_train.json
"""
from __future__ import annotations

import argparse
from typing import Sequence

from mmovod.cli.flags import hidden_alias, make_parser
from mmovod.cli.tool_runner import run_tool
from mmovod.demo.dataset import DEMO_SEED


def get_parser() -> argparse.ArgumentParser:
    parser = make_parser(__doc__)
    parser.add_argument("--out-dir", default="datasets/demo", help="folder to write the demo tree into: new, empty, or an earlier demo (which is replaced; "
                             "files of other names are kept)")
    hidden_alias(parser, "--out", "out_dir")
    parser.add_argument("--seed", type=int, default=DEMO_SEED, help="seed of every random choice")
    return parser


def run(args: argparse.Namespace) -> None:
    from mmovod.demo.dataset import make_demo_dataset

    counts = make_demo_dataset(args.out_dir, args.seed)
    for key, value in counts.items():
        print(f"{key}: {value}")
    print(f"wrote the demo dataset under {args.out_dir}")


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    return run_tool(get_parser(), run, argv, prog)
