"""Fetch the released assets the guide uses: the authors' visual-aggregator checkpoint, the authors' and
Detic's metadata files (datasets/metadata/), and, with --clip, CLIP weights into open_clip's cache.

Each file is downloaded to <name>.part beside its destination (a dropped connection is resumed with
HTTP Range requests, --retries times, or by running the command again), checked (the checkpoint by
the aggregator's strict key and shape check, arrays by shape and dtype, JSON by structure, sha256
and size where the manifest knows them) and only then renamed into place. Files already in place
that pass their check are kept. To prepare a machine without internet, run this where there is
internet and copy the repository and the CLIP cache over, or serve a prepared copy and fetch from
it with --base-url (a mirror keeps the files' relative names: the paths --list shows).

Examples:
  python tools/download_assets.py --list
  python tools/download_assets.py --clip ViT-B/32
  python tools/download_assets.py --only checkpoints lvis_v1_clip_a+cname
  python tools/download_assets.py --base-url http://login-node:8000 --clip ViT-B/32
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from tqdm import tqdm

from mmovod.assets.install import (FetchOptions, asset_target, asset_url, check_writable, install_asset,
                                   mirror_url)
from mmovod.assets.manifest import DEFAULT_MANIFEST, Asset, load_manifest, select_assets
from mmovod.cli.run import make_parser, run_tool
from mmovod.io.downloads import RetryPolicy
from mmovod.io.errors import InputError

if TYPE_CHECKING:
    from mmovod.assets.clip_weights import ClipWeights  # imports torch: loaded only with --clip

REPO_ROOT = Path(__file__).resolve().parents[1]
CLIP_GROUP = "clip"


def get_parser() -> argparse.ArgumentParser:
    parser = make_parser(__doc__)
    parser.add_argument("--list", action="store_true", help="list the assets (name, size, source, destination) and exit")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="fetch only these assets or groups (checkpoints, metadata, clip); default: all "
                             "manifest assets, plus the --clip weights")
    parser.add_argument("--dest", type=Path, default=REPO_ROOT, help="root the relative destinations are under")
    parser.add_argument("--base-url", default=None,
                        help="fetch from this mirror instead of the upstream URLs: <base-url>/<relative path>")
    parser.add_argument("--force", action="store_true", help="fetch again even when a file is in place")
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST, help="asset manifest (JSON)")
    net = parser.add_argument_group("network")
    net.add_argument("--retries", type=int, default=3, help="further attempts after a dropped connection or HTTP 5xx")
    net.add_argument("--retry-wait", type=float, default=1.0, help="seconds before the first retry (doubles each time)")
    net.add_argument("--timeout", type=float, default=60.0, help="seconds without data before a connection counts as dropped")
    clip = parser.add_argument_group("CLIP weights")
    clip.add_argument("--clip", nargs="+", metavar="MODEL", default=[],
                      help="also fetch these CLIP models' weights into open_clip's cache (e.g. ViT-B/32)")
    clip.add_argument("--pretrained", default=None,
                      help="open_clip pretrained tag of the --clip models (default: openai for OpenAI names)")
    clip.add_argument("--clip-cache-dir", type=Path, default=None,
                      help="cache folder for the CLIP weights; default: the one open_clip reads "
                           "(Hugging Face Hub cache, or ~/.cache/clip for URL-hosted weights)")
    return parser


def run(args: argparse.Namespace) -> int:
    if args.retries < 0 or args.retry_wait < 0 or args.timeout <= 0:
        raise InputError("--retries and --retry-wait must be >= 0, --timeout > 0")
    only = args.only
    if only and CLIP_GROUP in only and not args.clip:
        raise InputError("--only clip: name the models with --clip MODEL")
    assets = select_assets(load_manifest(args.manifest), [n for n in only if n != CLIP_GROUP] if only else None)
    weights = _clip_weights(args) if (not only or CLIP_GROUP in only) else []
    options = FetchOptions(Path(args.dest), args.base_url, RetryPolicy(args.retries, args.retry_wait, args.timeout),
                           args.force)
    if args.list:
        _print_list(assets, weights, options)
        return 0
    if not options.dest.is_dir():
        raise InputError(f"--dest {options.dest}: not a folder")
    for target in [asset_target(a, options.dest) for a in assets] + [w.target() for w in weights]:
        check_writable(target)
    for asset in assets:
        status = install_asset(asset, options, _bar)
        print(f"{status:8s} {asset.name} -> {asset_target(asset, options.dest)}")
    from mmovod.assets.clip_weights import install_clip_weights

    for w in weights:
        status, path = install_clip_weights(w, options.base_url, options.policy, _bar, options.force)
        print(f"{status:8s} {w.name} -> {path} (on a mirror: {w.mirror_path})")
    return 0


def _clip_weights(args: argparse.Namespace) -> list[ClipWeights]:
    if not args.clip:
        return []
    from mmovod.assets.clip_weights import resolve_clip_weights

    return [resolve_clip_weights(model, args.pretrained, args.clip_cache_dir) for model in args.clip]


def _print_list(assets: list[Asset], weights: list[ClipWeights], options: FetchOptions) -> None:
    for asset in assets:
        size = f"{asset.size:,} B" if asset.size is not None else "size unknown"
        print(f"{asset.name}  [{asset.group}, {size}]\n  from {asset_url(asset, options.base_url)}\n"
              f"  to   {asset_target(asset, options.dest)}\n  mirror path {asset.path}")
    for w in weights:
        source = w.upstream if options.base_url is None else mirror_url(options.base_url, w.mirror_path)
        print(f"{w.name}  [{CLIP_GROUP}]\n  from {source}\n  to   {w.target()}\n  mirror path {w.mirror_path}")


def _bar(label: str, total: int | None, initial: int) -> tqdm:
    return tqdm(total=total, initial=initial, desc=label, unit="B", unit_scale=True, unit_divisor=1024,
                leave=False, file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    return run_tool(get_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
