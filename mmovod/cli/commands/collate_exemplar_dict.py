"""Collate every LVIS class's image exemplars from LVIS train, ImageNet-21K-P and Visual Genome.

Writes a JSON object: LVIS synset -> list of exemplar records (classes by ascending category id).
The recipe of the paper, per class and in this order:
  LVIS     every lvis_v1_train.json annotation with area > 32*32 (its own fields + dataset "lvis",
           file_name "<split>/<file>" from coco_url, synset);
  ImageNet every image in train/<wnid>/ and imagenet21k_small_classes/<wnid>/ ({file_name
           "imagenet21k_P/<split>/<wnid>/<file>", category_id, dataset "imagenet21k", synset});
  VG       only for classes with fewer than 40 so far: objects whose only synset is the class's and
           w*h >= 32*32 (own fields + image_id, dataset "visual_genome", file_name "VG_100K/<id>.jpg",
           category_id, synset);
  cousins  classes still under 10 take the ImageNet images and VG objects of their substitute
           synsets (mmovod/data/exemplar_cousin_synsets.json), keeping the class's category_id.
A missing ImageNet or Visual Genome folder is a warning; the run ends with a per-source report.

Example:
  python tools/collate_exemplar_dict.py --lvis-dir datasets/lvis --imagenet-dir datasets/imagenet \\
      --visual-genome-dir datasets/VisualGenome --output-path datasets/metadata/exemplar_dict.json
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from mmovod.cli.flags import hidden_alias, make_parser
from mmovod.cli.tool_runner import run_tool
from mmovod.prep.exemplar_collation import COUSINS_BELOW, PAPER_COUSIN_CLASSES, PAPER_IMAGENET_DIRECT, VG_BELOW, build_exemplar_dict
from mmovod.io.wording import plural


def get_parser() -> argparse.ArgumentParser:
    parser = make_parser(__doc__)
    parser.add_argument("--lvis-dir", default="datasets/lvis", help="folder holding lvis_v1_train.json")
    parser.add_argument("--imagenet-dir", default="datasets/imagenet",
                        help="ImageNet folder: datasets/imagenet or datasets/imagenet/imagenet21k_P")
    parser.add_argument("--visual-genome-dir", default="datasets/VisualGenome",
                        help="folder holding objects.json and image_data.json")
    parser.add_argument("--out-path", default="datasets/metadata/exemplar_dict.json",
                        help="output JSON (its folder must exist)")
    hidden_alias(parser, "--output-path", "out_path")
    parser.add_argument("--strict", action="store_true",
                        help=f"fail, writing nothing, if any class ends with fewer than {COUSINS_BELOW} exemplars")
    return parser


def run(args: argparse.Namespace) -> None:
    r, out = build_exemplar_dict(args.lvis_dir, args.imagenet_dir, args.visual_genome_dir, args.out_path, args.strict)
    under = r["under_10"]
    print(f"{r['classes']} classes, {r['exemplars']} exemplars")
    print(f"  with LVIS exemplars:          {r['with_lvis']}")
    print(f"  matched directly in ImageNet: {r['imagenet_direct']} (paper: {PAPER_IMAGENET_DIRECT})")
    print(f"  under {VG_BELOW} before Visual Genome:  {r['vg_candidates']}; with VG exemplars: {r['with_visual_genome']}")
    print(f"  under {COUSINS_BELOW} before cousins:      {r['needing_cousins']} (paper: {PAPER_COUSIN_CLASSES}); "
          f"with cousin exemplars: {r['with_cousins']}")
    if under:
        print(f"warning: {plural(len(under), 'class still has', 'classes still have')} fewer than {COUSINS_BELOW} exemplars: {', '.join(under)}",
              file=sys.stderr)
    print(f"wrote {out}")


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    return run_tool(get_parser(), run, argv, prog)
