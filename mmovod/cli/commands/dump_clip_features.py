r"""CLIP text embeddings of LVIS class-name prompts: the Detic classifier (`lvis_v1_clip_a+cname.npy`).

For every category of the annotation file, in ascending id, embeds a prompt of its name with the
CLIP text encoder and writes a float32 (num_classes, D) array, NOT normalised (the detector
normalises), plus a `.npy.json` sidecar recording the CLIP model, prompt and category ids.

Example:
  python tools/dump_clip_features.py --ann datasets/lvis/lvis_v1_val.json \
      --out_path datasets/metadata/lvis_v1_clip_a+cname.npy
"""
from __future__ import annotations

import argparse
from typing import Sequence

from mmovod.classifiers.text_inputs import PROMPTS, PromptSpec
from mmovod.cli.flags import TEXT_BATCH_HELP, add_aliased_arg, add_clip_args, clip_spec_from_args, make_parser
from mmovod.cli.tool_runner import run_tool


def get_parser() -> argparse.ArgumentParser:
    parser = make_parser(__doc__)
    parser.add_argument("--ann", default="datasets/lvis/lvis_v1_val.json",
                        help="LVIS-format annotation JSON whose 'categories' are embedded")
    add_aliased_arg(parser, "--out-path", "--out_path", "out_path", required=True,
                    help="output .npy (its folder must exist); a .npy.json sidecar is written beside it")
    parser.add_argument("--prompt", choices=sorted(PROMPTS), default="a",
                        help="template: a -> 'a <name>', none -> '<name>', photo -> 'a photo of a <name>', "
                             "scene -> 'a photo of a <name> in the scene'")
    parser.add_argument("--model", choices=["clip"], default="clip", help="text encoder family (only CLIP)")
    parser.add_argument("--fix_space", action="store_true", help="replace '_' with ' ' in category names")
    parser.add_argument("--use_underscore", action="store_true",
                        help="replace ' ' with '_' in category names (after stripping, '/ ' -> '/')")
    parser.add_argument("--avg_synonyms", action="store_true",
                        help="embed the prompt of every synonym of a class and average them per class "
                             "(synonyms are used as written, like Detic)")
    parser.add_argument("--use_wn_name", action="store_true",
                        help="with --avg_synonyms: synonyms are the WordNet lemma names of the class's synset "
                             "(stop_sign for stop_sign.n.01) instead of the LVIS 'synonyms'")
    add_clip_args(parser, batch_size=None, batch_help=TEXT_BATCH_HELP)
    return parser


def run(args: argparse.Namespace) -> None:
    from mmovod.classifiers.text import write_prompt_classifier

    prompts = PromptSpec(args.prompt, args.fix_space, args.use_underscore, args.avg_synonyms, args.use_wn_name)
    write_prompt_classifier(args.ann, args.out_path, clip_spec_from_args(args), prompts, command=args.command_line)


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    return run_tool(get_parser(), run, argv, prog)
