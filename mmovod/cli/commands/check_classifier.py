r"""Check classifier .npy files before a detector loads them; one line per problem, exit 2 if any.

Checks the shape (classes x dim), dtype, NaN/inf, all-zero and duplicate rows, the embedding size
against the CLIP model (--clip_model; read from the model's config, no weights loaded), and the
.npy.json sidecar: shape and dtype, the CLIP it was made with, repeated class names, the class order
against a vocabulary (--vocab), and rows said to be L2-normalised. A classifier built with another
CLIP, or with rows in another order, is silently useless to a detector (Detic issues #62, #72, #73).

Example:
  python tools/check_classifier.py datasets/metadata/lvis_v1_clip_a+cname.npy --clip_model ViT-B/32
  python tools/check_classifier.py out/multi-modal-average.npy --vocab my_classes.txt
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from mmovod.cli.flags import make_parser
from mmovod.cli.tool_runner import EXIT_BAD_INPUT, run_tool


def get_parser() -> argparse.ArgumentParser:
    parser = make_parser(__doc__)
    parser.add_argument("paths", nargs="+", metavar="X.npy", help="classifier files to check")
    parser.add_argument("--clip_model", "--clip-model", dest="clip_model", default=None,
                        help="the detector's CLIP (OpenAI name, open_clip name or model-config .json): rows must "
                             "have its embedding size and the sidecar must name it (default: not checked)")
    parser.add_argument("--vocab", default=None,
                        help="vocabulary file whose class order the sidecar's class names must follow")
    return parser


def run(args: argparse.Namespace) -> int:
    from mmovod.classifiers.check import check_classifier
    from mmovod.classifiers.kinds import SPACE_NOTES
    from mmovod.classifiers.sidecar import read_sidecar
    from mmovod.io.arrays import load_matrix
    from mmovod.readers.vocabulary_file import read_vocabulary

    class_names = read_vocabulary(args.vocab).names if args.vocab else None
    failed = False
    for path in args.paths:
        problems = check_classifier(path, args.clip_model, class_names)
        for line in problems:
            sys.stderr.write(line + "\n")
        if problems:
            failed = True
            continue
        array = load_matrix(path, mmap=True)
        side = read_sidecar(path)
        made = f"{side.kind}, CLIP {side.clip_model}" if side else "no sidecar"
        note = f"; {SPACE_NOTES.get(side.space, side.space)}" if side else ""
        print(f"{path}: OK ({array.shape[0]} x {array.shape[1]} {array.dtype}, {made}){note}")
    return EXIT_BAD_INPUT if failed else 0


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    return run_tool(get_parser(), run, argv, prog)
