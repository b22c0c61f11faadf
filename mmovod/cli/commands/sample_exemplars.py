"""Sample K image exemplars per LVIS class from the collated exemplar dict.

For each LVIS category (ascending id), with a fresh numpy.random.default_rng(--seed), K records are
drawn without replacement with probability proportional to their area (ImageNet images count as
100*100, LVIS records bbox w*h, Visual Genome w*h); each chosen record gains that `area`. This is
the authors' procedure: the same inputs and seed pick the same exemplars. Writes a JSON list over
categories (ascending id) of lists of K records (dataset, file_name, category_id, synset, area, and
bbox for LVIS or x, y, w, h for Visual Genome).

Example:
  python tools/sample_exemplars.py --lvis-ann-path datasets/lvis/lvis_v1_val.json \\
      --exemplar-dict-path datasets/metadata/exemplar_dict.json -K 5 \\
      --out-path datasets/metadata/lvis_image_exemplar_dict_K-005_own.json
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from mmovod.cli.flags import hidden_alias, make_parser
from mmovod.cli.tool_runner import run_tool
from mmovod.prep.exemplar_sampling import DEFAULT_SEED
from mmovod.io.wording import plural


def get_parser() -> argparse.ArgumentParser:
    parser = make_parser(__doc__)
    parser.add_argument("--lvis-ann-path", default="datasets/lvis/lvis_v1_val.json",
                        help="LVIS annotation file whose categories are sampled")
    parser.add_argument("--exemplar-dict", dest="exemplar_dict", default="datasets/metadata/exemplar_dict.json",
                        help="the output of tools/collate_exemplar_dict.py")
    hidden_alias(parser, "--exemplar-dict-path", "exemplar_dict")
    parser.add_argument("-K", type=int, default=5, help="exemplars per class")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of each class's fresh generator")
    parser.add_argument("--out-path", default="datasets/metadata/lvis_image_exemplar_dict_K-005_own.json",
                        help="output JSON (its folder must exist)")
    parser.add_argument("--allow-fewer", action="store_true",
                        help="keep all exemplars of a class with fewer than K, instead of failing")
    return parser


def run(args: argparse.Namespace) -> None:
    from mmovod.prep.exemplar_sampling import write_sampled_exemplars

    result, out = write_sampled_exemplars(args.lvis_ann_path, args.exemplar_dict, args.out_path, args.K, args.seed,
                                          args.allow_fewer)
    if result.short:
        print(f"warning: {plural(len(result.short), 'class has', 'classes have')} fewer than {args.K} exemplars: "
              + ", ".join(f"{s} ({n})" for s, n in result.short), file=sys.stderr)
    print(f"{sum(len(c) for c in result.chosen)} exemplars for {plural(len(result.chosen), 'class', 'classes')} (K={args.K}, seed={args.seed})")
    print(f"wrote {out}")


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    return run_tool(get_parser(), run, argv, prog)
