"""List the CLIP models and pretrained tags open_clip can download, marking (*) those whose weights are already here.

First comes `world`, the CLIP shipped with mmovod: `--clip_model world` loads it offline, with no other
flag (it knows the demo's procedural world, not real photos).

Weights are here when open_clip reads them without a download: from the Hugging Face cache ($HF_HUB_CACHE,
by default ~/.cache/huggingface/hub) or, for weights open_clip takes from a URL, from ~/.cache/clip. A
model name goes to --clip_model (the OpenAI spellings ViT-B/32, RN50, ... mean the `openai` tag), a tag
to --pretrained; download_assets.py --clip MODEL [--pretrained TAG] fetches weights into the cache.

Examples:
  python tools/models.py --here
  python tools/models.py --model ViT-B-32
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from mmovod.cli.flags import make_parser
from mmovod.cli.tool_runner import run_tool


def get_parser() -> argparse.ArgumentParser:
    parser = make_parser(__doc__)
    parser.add_argument("--model", default=None,
                        help="only this model (world, an open_clip name such as ViT-B-32, or an OpenAI spelling such as ViT-B/32)")
    parser.add_argument("--here", action="store_true", help="only the weights already in the cache")
    parser.add_argument("--clip-cache-dir", type=Path, default=None,
                        help="the cache folder download_assets.py --clip-cache-dir filled (unset: open_clip's)")
    return parser


def run(args: argparse.Namespace) -> None:
    from mmovod.clip.factory import OPENAI_NAMES
    from mmovod.clip.shipped import WORLD, WORLD_SUMMARY, world_clip_paths
    from mmovod.clip.weights import released_weights
    from mmovod.io.errors import InputError

    if args.clip_cache_dir is not None and not args.clip_cache_dir.is_dir():
        raise InputError(f"--clip-cache-dir {args.clip_cache_dir}: not a folder")
    model = OPENAI_NAMES.get(args.model, args.model)
    weights = [] if model == WORLD else released_weights(model, args.clip_cache_dir)
    width = max((len(w.name) for w in weights), default=len(WORLD))
    print(f"* {WORLD:<{width}}  {WORLD_SUMMARY}  ({world_clip_paths()[1]})")
    if model == WORLD:
        return
    if model is not None and not weights:
        raise InputError(f"--model {args.model}: open_clip lists no released weights for it")
    here = [w for w in weights if w.cached]
    for w in here if args.here else weights:
        print(f"{'*' if w.cached else ' '} {w.name:<{width}}  {w.tag}" + (f"  ({w.cached})" if w.cached else ""))
    print(f"{len(here)} of {len(weights)} released open_clip weights are downloaded here (*), and world ships with mmovod")


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    return run_tool(get_parser(), run, argv, prog)
