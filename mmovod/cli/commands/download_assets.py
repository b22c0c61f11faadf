"""Fetch the released assets the guide uses: the authors' visual-aggregator checkpoint, the authors' and
Detic's metadata files (datasets/metadata/); with --clip MODEL, only that CLIP's weights, into open_clip's cache.

Each file is downloaded to <name>.part beside its destination (a dropped connection is resumed with
HTTP Range requests, --retries times, or, also after Ctrl-C, by running the command again), checked
(the checkpoint by the aggregator's strict key and shape check, arrays by shape and dtype, JSON by
structure, sha256 and size where the manifest knows them) and only then renamed into place. Files already in place
that pass their check are kept. To prepare a machine without internet, run this where there is
internet and copy the repository and the CLIP cache over, or serve a prepared copy and fetch from
it with --base-url (a mirror keeps the files' relative names: the paths --list shows).

Examples:
  python tools/download_assets.py --list
  python tools/download_assets.py --clip ViT-B/32
  python tools/download_assets.py --only checkpoints lvis_v1_clip_a+cname
  python tools/download_assets.py --base-url http://login-node:8000 --only checkpoints metadata clip --clip ViT-B/32
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from mmovod.assets.manifest import DEFAULT_MANIFEST
from mmovod.cli.flags import int_at_least, make_parser, non_negative_float
from mmovod.cli.tool_runner import run_tool


def get_parser() -> argparse.ArgumentParser:
    parser = make_parser(__doc__)
    parser.add_argument("--list", action="store_true", help="list the assets (name, size, source, destination) and exit")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="fetch only these assets or groups (checkpoints, metadata, clip); unset: all "
                             "manifest assets, or with --clip only those weights")
    parser.add_argument("--dest", type=Path, default=Path("."),
                        help="folder the relative destinations (datasets/..., checkpoints/...) are under, normally "
                             "the repository root, where the guide's commands run")
    parser.add_argument("--base-url", default=None,
                        help="fetch from this mirror instead of the upstream URLs: <base-url>/<relative path>")
    parser.add_argument("--force", action="store_true", help="fetch again even when a file is in place")
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST, help="asset manifest (JSON)")
    net = parser.add_argument_group("network")
    net.add_argument("--retries", type=int_at_least(0), default=3,
                     help="further attempts after a dropped connection or HTTP 5xx")
    net.add_argument("--retry-wait", type=non_negative_float, default=1.0,
                     help="seconds before the first retry (doubles each time)")
    net.add_argument("--timeout", type=non_negative_float, default=60.0,
                     help="seconds without data before a connection counts as dropped")
    clip = parser.add_argument_group("CLIP weights")
    clip.add_argument("--clip", nargs="+", metavar="MODEL", default=[],
                      help="fetch these CLIP models' weights into open_clip's cache (e.g. ViT-B/32), and nothing else unless "
                           "--only names more")
    clip.add_argument("--pretrained", default=None,
                      help="open_clip pretrained tag of the --clip models (unset: openai for OpenAI names)")
    clip.add_argument("--clip-cache-dir", type=Path, default=None,
                      help="cache folder for the CLIP weights; unset: the one open_clip reads "
                           "(Hugging Face Hub cache, or ~/.cache/clip for URL-hosted weights)")
    return parser


def run(args: argparse.Namespace) -> None:
    from mmovod.assets.fetch import AssetRequest, download_assets

    request = AssetRequest(only=args.only, dest=args.dest, base_url=args.base_url, force=args.force,
                           manifest=args.manifest, retries=args.retries, retry_wait=args.retry_wait,
                           timeout=args.timeout, clip_models=args.clip, pretrained=args.pretrained,
                           clip_cache_dir=args.clip_cache_dir)
    for line in download_assets(request, list_only=args.list):
        print(line)


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    return run_tool(get_parser(), run, argv, prog)
