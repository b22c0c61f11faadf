r"""Hand a classifier to the detector you use: Detic, YOLO-World (the official repository) or Ultralytics.

Reads a classifier .npy (any of mmovod's, the guide tools', or a released file: one without a
.npy.json sidecar is described by --class-names, --clip_model and, for the YOLO-World formats,
--space) and writes it in the detector's own format, with the class names in row order, then prints
the lines that load it (docs/handoff.md):
  detic        OUT.npy (float32, as Detic's ZeroShotClassifier reads it), OUT.classes.txt, OUT.detic.txt
               (the config options, also printed)
  yolo-world   OUT.npy (float32, rows L2-normalised: SimpleYOLOWorldDetector's embedding_path),
               OUT.classes.txt (the test dataset's classes, in row order) and OUT.class_texts.json
  ultralytics  OUT.pt ({"txt_feats": (1, C, D), "names": [...]}, read by torch.load(..., weights_only=True))
Each with a sidecar. Refused, writing nothing: rows from the visual aggregator for the YOLO-World
formats (they compare rows with CLIP embeddings: the message says which kinds work), rows of another
width than --embed-dim, rows holding NaN/inf or all zeros. Without --embed-dim, rows of another width
than the released detectors' 512 are written with a note.

Example:
  mmovod export my_classifiers/multi-modal-average.npy --format ultralytics --out-path my_classes.pt
  python tools/export_classifier.py datasets/metadata/lvis_v1_clip_a+cname.npy --format yolo-world \
      --out-path lvis_yolo_world.npy --class-names datasets/lvis/lvis_v1_val.json --clip_model ViT-B/32 --space clip
"""
from __future__ import annotations

import argparse
from typing import Sequence

from mmovod.classifiers.kinds import SPACES
from mmovod.cli.flags import add_aliased_arg, int_at_least, make_parser
from mmovod.cli.tool_runner import run_tool
from mmovod.handoff.formats import FORMATS


def get_parser() -> argparse.ArgumentParser:
    parser = make_parser(__doc__)
    parser.add_argument("classifier", metavar="X.npy", help="the classifier to hand off (C rows of D numbers)")
    parser.add_argument("--format", required=True, choices=FORMATS, help="the detector's format (listed above)")
    add_aliased_arg(parser, "--out-path", "--out", "out_path", required=True,
                    help="the file to write: .npy for detic and yolo-world, .pt for ultralytics (its folder must exist)")
    parser.add_argument("--embed-dim", type=int_at_least(1), default=None,
                        help="the CLIP width the detector takes (512 for the released Detic, YOLO-World and "
                             "Ultralytics models): rows of another width are refused (default: not checked)")
    side = parser.add_argument_group("a classifier without sidecar (the authors' released files)")
    side.add_argument("--class-names", default=None, metavar="FILE",
                      help="its classes in row order: one name a line, a JSON/YAML class list, or the LVIS/COCO "
                           "annotation file (categories in id order, or matched by the sidecar's category ids); with "
                           "a sidecar that lists names, they must agree")
    side.add_argument("--clip_model", "--clip-model", dest="clip_model", default=None,
                      help="the CLIP that made it (needed without sidecar; with one it must agree)")
    side.add_argument("--pretrained", default=None, help="that CLIP's weights (recorded in the export's sidecar)")
    side.add_argument("--space", choices=SPACES, default=None,
                      help="the space its rows are in: clip (CLIP text or image rows), aggregator (the visual "
                           "aggregator's: the authors' *_agg_* files) or mixed (a fusion of both); the YOLO-World "
                           "formats need it without sidecar")
    return parser


def run(args: argparse.Namespace) -> None:
    from mmovod.handoff.formats import export_classifier

    handoff = export_classifier(args.classifier, args.format, args.out_path, class_names=args.class_names,
                                clip_model=args.clip_model, pretrained=args.pretrained, space=args.space,
                                embed_dim=args.embed_dim, command=args.command_line)
    print(f"wrote {', '.join(map(str, handoff.files))}")
    for note in handoff.notes:
        print(f"note: {note}")
    print(f"{FORMATS[args.format].detector} loads it with (docs/handoff.md):")
    for line in handoff.lines:
        print(f"  {line}")


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    return run_tool(get_parser(), run, argv, prog)
