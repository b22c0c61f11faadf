r"""CLIP text embeddings of LLM class descriptions, averaged per LVIS class (the description classifier).

For every category of the annotation file, in ascending id, looks up its descriptions (keyed by the
class's first synonym with '_' -> ' '), embeds them all with the CLIP text encoder and writes the
per-class mean as a float32 (num_classes, D) array, NOT normalised, plus a `.npy.json` sidecar.
(The original script saved the last class's per-sentence matrix by mistake; this one saves the means.)

Example:
  python tools/dump_clip_features_lvis_sentences.py \
      --descriptions-path datasets/metadata/lvis_gpt3_text-davinci-002_descriptions_author.json \
      --ann-path datasets/lvis/lvis_v1_val.json \
      --out-path datasets/metadata/lvis_gpt3_text-davinci-002_features_author.npy
"""
from __future__ import annotations

import argparse
from typing import Sequence

from mmovod.cli.flags import TEXT_BATCH_HELP, add_clip_args, clip_spec_from_args, make_parser
from mmovod.cli.tool_runner import run_tool


def get_parser() -> argparse.ArgumentParser:
    parser = make_parser(__doc__)
    parser.add_argument("--descriptions-path", default="datasets/metadata/lvis_gpt3_text-davinci-002_descriptions_author.json",
                        help="JSON object {class name: [sentences]} (tools/generate_descriptions.py writes one)")
    parser.add_argument("--ann-path", default="datasets/lvis/lvis_v1_val.json",
                        help="LVIS-format annotation JSON giving the classes and their order")
    parser.add_argument("--out-path", default="datasets/metadata/lvis_gpt3_text-davinci-002_features_author.npy",
                        help="output .npy (its folder must exist); a .npy.json sidecar is written beside it")
    parser.add_argument("--model", choices=["clip"], default="clip", help="text encoder family (only CLIP)")
    add_clip_args(parser, batch_size=None, batch_help=TEXT_BATCH_HELP)
    return parser


def run(args: argparse.Namespace) -> None:
    from mmovod.classifiers.text import write_description_classifier

    write_description_classifier(args.descriptions_path, args.ann_path, args.out_path, clip_spec_from_args(args),
                                 command=args.command_line)


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    return run_tool(get_parser(), run, argv, prog)
