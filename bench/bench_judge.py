"""Benchmark: the build's leave-one-out judge at LVIS scale, against the build's own aggregation.

Scale (default): 1,203 classes x 5 photos x 5 views x 512 dims (generated, class-clustered), a 4-layer
512-d aggregator (random weights: the time does not depend on them) and the six kinds a build judges
(text, descriptions, vision-average, vision-aggregated, both fusions; with --own-space the aggregated
kinds are judged as rows not in CLIP's space, raw and through the cross-fitted map, as for the authors'
checkpoint). Each phase runs in its own child process, which reports its wall time and peak RSS:
  judge      ours: `mmovod.evaluation.leave_one_out.leave_one_out` (every held-out photo, every kind)
  build      baseline: what the build computes from the same embeddings anyway (averaged and aggregated rows)
The judge encodes no image: both phases start from the same embeddings, as in a build.

Run:
  python bench/bench_judge.py [--classes 1203] [--photos 5] [--views 5] [--own-space]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_aggregator_training import peak_rss_mb  # noqa: E402
from mmovod.aggregator.model import VisualAggregator  # noqa: E402
from mmovod.classifiers.fusion import fuse_with_text_fallback  # noqa: E402
from mmovod.classifiers.vision import aggregated_classifier, average_classifier  # noqa: E402
from mmovod.clip.image_encoding import ExemplarEmbeddings  # noqa: E402
from mmovod.evaluation.leave_one_out import JudgedKind, leave_one_out  # noqa: E402


def world(classes: int, photos: int, views: int, dim: int) -> tuple[ExemplarEmbeddings, np.ndarray, VisualAggregator]:
    """Class-clustered view embeddings, text rows near the class centres, and a random 4-layer aggregator."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(classes, dim))
    class_of = np.repeat(np.arange(classes), photos)
    embeddings = centres[class_of][:, None] + 0.8 * rng.normal(size=(len(class_of), views, dim))
    encoded = ExemplarEmbeddings(torch.tensor(embeddings, dtype=torch.float32), torch.ones(len(class_of), dtype=torch.bool),
                                 torch.from_numpy(class_of), classes)
    torch.manual_seed(0)
    return encoded, (centres + rng.normal(size=centres.shape)).astype(np.float32), VisualAggregator(dim=dim).eval()


def phase(name: str, classes: int, photos: int, views: int, dim: int, own_space: bool) -> dict:
    torch.set_num_threads(torch.get_num_threads())
    encoded, text, aggregator = world(classes, photos, views, dim)
    start = time.perf_counter()
    average = average_classifier(encoded)
    aggregated = aggregated_classifier(encoded, aggregator, views).astype(np.float32)
    built = time.perf_counter() - start
    result = {"phase": name, "build_s": built}
    if name == "judge":
        space = "aggregator" if own_space else "clip"
        kinds = [JudgedKind("text", text), JudgedKind("descriptions", text),
                 JudgedKind("vision-average", average, vision="vision-average"),
                 JudgedKind("vision-aggregated", aggregated, vision="vision-aggregated", space=space),
                 JudgedKind("multi-modal-average", fuse_with_text_fallback(text, average), vision="vision-average",
                            text=text),
                 JudgedKind("multi-modal-aggregated", fuse_with_text_fallback(text, aggregated),
                            vision="vision-aggregated", text=text, space="mixed" if own_space else "clip")]
        start = time.perf_counter()
        judged = leave_one_out([str(c) for c in range(classes)], encoded, kinds,
                               views={"vision-average": encoded, "vision-aggregated": encoded},
                               aggregator=aggregator, num_views=views)
        result["judge_s"] = time.perf_counter() - start
        result["photos"] = int(len(judged.labels))
        result["kinds"] = len(judged.kinds)
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, default=1203)
    parser.add_argument("--photos", type=int, default=5)
    parser.add_argument("--views", type=int, default=5)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--own-space", action="store_true", help="judge the aggregated kinds as rows not in CLIP's space")
    parser.add_argument("--phase", choices=["judge", "build"], default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    scale = [str(v) for v in (args.classes, args.photos, args.views, args.dim)]
    if args.phase:
        print(json.dumps(phase(args.phase, *map(int, scale), args.own_space)))
        return 0
    runs = {}
    for name in ("build", "judge"):
        out = subprocess.run([sys.executable, __file__, "--phase", name, "--classes", scale[0], "--photos", scale[1],
                              "--views", scale[2], "--dim", scale[3], *(["--own-space"] if args.own_space else [])],
                             check=True, capture_output=True, text=True).stdout
        runs[name] = json.loads(out.splitlines()[-1])
    judge, build = runs["judge"], runs["build"]
    print(f"{args.classes} classes x {args.photos} photos x {args.views} views x {args.dim} dims, "
          f"{judge['kinds']} kinds judged on {judge['photos']} held-out photos"
          f"{' (aggregated kinds not in CLIP space: raw and mapped)' if args.own_space else ''}")
    print("| phase | wall | photos/s | peak RSS |")
    print("|---|---:|---:|---:|")
    print(f"| judge (leave-one-out, ours) | {judge['judge_s']:.1f} s | {judge['photos'] / judge['judge_s']:,.0f} | "
          f"{judge['peak_rss_mb']:,.0f} MB |")
    print(f"| build rows from the same embeddings (baseline) | {build['build_s']:.1f} s | "
          f"{judge['photos'] / build['build_s']:,.0f} | {build['peak_rss_mb']:,.0f} MB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
