"""Evaluate a visual aggregator without a detector: class retrieval on held-out classes.

For each held-out class, K exemplars (K in --ks) are aggregated into a class vector; other images of
the same classes are classified by their nearest class vector (cosine; a query is embedded as a set
of one image). The same is done with plain averaging of the same CLIP features, the baseline the
aggregator has to beat. Prints a table and writes JSON. The cache should hold classes the
aggregator was not trained on (e.g. the LVIS-rare wnids of ImageNet-21K-P).

Example:
  python tools/eval_visual_aggregator.py --cache datasets/imagenet/clip_cache_rare \\
      --load-path checkpoints/visual_aggregator/own/visual_aggregator.pth --out-path eval_rare.json
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from mmovod.aggregator import VisualAggregator
from mmovod.aggregator_training import trained_clip
from mmovod.aggregator_eval import DEFAULT_KS, retrieval_accuracy, select_classes
from mmovod.atomic import check_output_path
from mmovod.cli import make_parser, run_tool
from mmovod.clip_model import resolve_device
from mmovod.errors import InputError
from mmovod.feature_cache import FeatureCache, check_cache_clip, describe_clip
from mmovod.jsonio import read_bytes, save_json


def get_parser() -> argparse.ArgumentParser:
    parser = make_parser(__doc__)
    parser.add_argument("--cache", required=True, help="feature cache of the held-out classes (tools/cache_clip_features.py)")
    parser.add_argument("--load-path", required=True, help="aggregator checkpoint (visual_aggregator.pth, or the authors' weights)")
    parser.add_argument("--num-layers", type=int, default=4, help="transformer layers of the aggregator")
    parser.add_argument("--out-path", required=True, help="JSON file for the results (its folder must exist)")
    parser.add_argument("--classes", default=None, help="text file, one class name per line: evaluate only these (default: every class of the cache)")
    parser.add_argument("--ks", type=int, nargs="+", default=list(DEFAULT_KS), help="exemplar counts K")
    parser.add_argument("--queries", type=int, default=20, help="query images per class and trial")
    parser.add_argument("--trials", type=int, default=5, help="random exemplar/query draws averaged")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draws")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--strict", action="store_true", help="fail on classes with fewer than max(K)+1 images instead of skipping them")
    return parser


def read_class_list(path: str) -> list[str]:
    names = [line.strip() for line in read_bytes(path, "class list").decode().splitlines() if line.strip()]
    if not names:
        raise InputError(f"{path}: class list is empty")
    return names


def run(args: argparse.Namespace) -> None:
    out = check_output_path(args.out_path)
    if min(args.ks) < 1 or args.queries < 1 or args.trials < 1:
        raise InputError("--ks, --queries and --trials must be positive")
    cache = FeatureCache(args.cache)
    trained_on = trained_clip(args.load_path)
    if trained_on is not None:
        check_cache_clip(cache, trained_on.get("clip_model"), trained_on.get("pretrained"))
    model = VisualAggregator.from_checkpoint(args.load_path, num_layers=args.num_layers)
    if model.dim != cache.dim:
        raise InputError(f"{args.load_path}: aggregator of dim {model.dim}, but the cache holds {cache.dim}-dim features")
    names = read_class_list(args.classes) if args.classes else None
    ids = select_classes(cache, names, max(args.ks) + 1, args.strict)
    result = retrieval_accuracy(cache, model, ids, sorted(set(args.ks)), args.queries, args.trials, args.seed,
                                resolve_device(args.device))
    doc = {**result.as_json(), "cache": str(cache.root), "clip": cache.clip, "load_path": str(args.load_path)}
    print(f"class retrieval on {len(ids)} classes ({describe_clip(cache.clip)}), chance {result.chance:.3f}")
    print(f"{'K':>4} {'aggregator':>11} {'average':>9}")
    for k in result.ks:
        print(f"{k:>4} {result.aggregator[k]:>11.4f} {result.average[k]:>9.4f}")
    save_json(out, doc, indent=True)
    print(f"wrote {out}")


def main(argv: Sequence[str] | None = None) -> int:
    return run_tool(get_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
