"""Evaluate a visual aggregator without a detector: class retrieval on held-out classes.

For each held-out class, K exemplars (K in --ks) are aggregated into a class vector; other images of
the same classes are classified by their nearest class vector (cosine; a query is embedded as a set
of one image). The same is done with plain averaging of the same CLIP features, the baseline the
aggregator has to beat. Prints a table and writes JSON. The cache should hold classes the
aggregator was not trained on (e.g. the LVIS-rare wnids of ImageNet-21K-P).

Example:
  python tools/eval_visual_aggregator.py --cache datasets/imagenet/clip_cache_rare \\
      --aggregator checkpoints/visual_aggregator/own/visual_aggregator.pth --out-path eval_rare.json
"""
from __future__ import annotations

import argparse
from typing import Sequence

from mmovod.cli.flags import TRUST_CHECKPOINT_HELP, add_aggregator_arg, int_at_least, make_parser
from mmovod.cli.tool_runner import run_tool


def get_parser() -> argparse.ArgumentParser:
    parser = make_parser(__doc__)
    parser.add_argument("--cache", required=True, help="feature cache of the held-out classes (tools/cache_clip_features.py)")
    add_aggregator_arg(parser, "aggregator checkpoint (visual_aggregator.pth, or the authors' weights)", required=True)
    parser.add_argument("--trust-checkpoint", action="store_true", help=TRUST_CHECKPOINT_HELP)
    parser.add_argument("--num-layers", type=int_at_least(1), default=4, help="transformer layers of the aggregator")
    parser.add_argument("--out-path", required=True, help="JSON file for the results (its folder must exist)")
    parser.add_argument("--classes", default=None, help="text file, one class name per line: evaluate only these (default: every class of the cache)")
    parser.add_argument("--ks", type=int_at_least(1), nargs="+", default=[1, 2, 5, 10], help="exemplar counts K")
    parser.add_argument("--queries", type=int_at_least(1), default=20, help="query images per class and trial")
    parser.add_argument("--trials", type=int_at_least(1), default=5, help="random exemplar/query draws averaged")
    parser.add_argument("--seed", type=int_at_least(0), default=0, help="seed of the draws")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--strict", action="store_true", help="fail on classes with fewer than max(K)+1 images instead of skipping them")
    return parser


def run(args: argparse.Namespace) -> None:
    from mmovod.aggregator.heldout_retrieval import evaluate_aggregator
    from mmovod.features.feature_cache import describe_clip

    run_ = evaluate_aggregator(args.cache, args.aggregator, args.num_layers, args.out_path, classes_path=args.classes,
                               ks=args.ks, queries=args.queries, trials=args.trials, seed=args.seed, device=args.device,
                               strict=args.strict, trust_checkpoint=args.trust_checkpoint)
    result = run_.result
    print(f"class retrieval on {run_.classes} classes ({describe_clip(run_.clip)}), chance {result.chance:.3f}")
    print(f"{'K':>4} {'aggregator':>11} {'average':>9}")
    for k in result.ks:
        print(f"{k:>4} {result.aggregator[k]:>11.4f} {result.average[k]:>9.4f}")
    print(f"wrote {run_.path}")


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    return run_tool(get_parser(), run, argv, prog)
