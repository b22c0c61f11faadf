"""Is this classifier any good? Classify the ground-truth boxes of a labelled set with each classifier,
as a Detic-style detector's zero-shot head would score a perfect proposal, without training a detector.

Crops: every box of --ann (LVIS or COCO format) that is not crowd and has area > --min-area, at most
--max-per-class per category (a seeded choice). Crop rule (the exemplar crops' geometry,
mmovod.clip.crops): the box [x, y, w, h] becomes [floor x, floor y, floor w + 1, floor h + 1], is
grown by (1 + --context) around its centre and made square with side max(w, h), then clamped to the
image; --context 0 (default) is the box made square. Each crop is encoded once by the CLIP that the
classifiers' sidecars name (--clip_model/--pretrained only for classifiers without one; --views N > 1:
N TTA views, averaged) and cached under --cache-dir (default <out-dir>/crop_cache), so another run or
another classifier reuses the embeddings and an interrupted run resumes.

Scores: cosine between the L2-normalised crop embedding and every L2-normalised class row, as a
detector compares its region embeddings with the rows (no crop passes through the visual aggregator).
Rows not in CLIP's space (sidecar space "aggregator" or "mixed": the authors' aggregated files, or an
aggregator trained for its own space) are scored twice: "raw" (what a detector trained on text rows
sees with them swapped in at test time) and "<name> (mapped)", through a linear map from crops to the
rows fitted on the other classes' crops only (what a detector trained with these rows learns). Rows are matched to --ann's categories by the
sidecar's category ids, else by its class names and synonyms (your own classes on your own
COCO-format set: the unmatched are named), else by order; all-zero rows (classes without exemplars)
are left out and named. Metrics, overall and, when --ann has LVIS frequencies, per group
(r/c/f): top-1 and top-5 accuracy over crops, mean per-class accuracy, and per-class average precision
of ranking all crops by the class's score (exact, non-interpolated, tie-aware) with its mean (mAP).
Writes eval_results.json (every number, per class, 20 most confused pairs), eval_results.md and two PNG
plots to --out-dir; --report adds report.html with the worst classes' misclassified crops.

Examples:
  python tools/eval_classifiers.py --classifiers datasets/metadata/lvis_v1_clip_a+cname.npy \\
      datasets/metadata/lvis_multi-modal_avg_K-005_own.npy --ann datasets/lvis/lvis_v1_val.json \\
      --img-dir datasets/coco/ --out-dir eval/
  python tools/eval_classifiers.py --classifiers my_classifiers/text.npy \\
      my_classifiers/multi-modal-average.npy --ann my_val.json --img-dir my_images/ --out-dir my_eval/
"""
from __future__ import annotations

import argparse
from typing import Sequence

from mmovod.cli.flags import (add_clip_args, add_views_arg, add_workers_arg, int_at_least, make_parser,
                              non_negative_float)
from mmovod.cli.tool_runner import run_tool
from mmovod.evaluation.crops_from_annotations import DEFAULT_MAX_PER_CLASS, DEFAULT_MIN_AREA


def get_parser() -> argparse.ArgumentParser:
    parser = make_parser(__doc__)
    parser.add_argument("--classifiers", nargs="+", required=True,
                        help="classifier .npy files (C x D) with their .npy.json sidecars; all made with one CLIP")
    parser.add_argument("--ann", default="datasets/lvis/lvis_v1_val.json",
                        help="labelled boxes: an LVIS- or COCO-format JSON")
    parser.add_argument("--img-dir", default="datasets/coco/",
                        help="image root: an image is <img-dir>/<split>/<file> from its coco_url, else <img-dir>/<file_name>")
    parser.add_argument("--out-dir", default="eval", help="folder for the results (created; its parent must exist)")
    parser.add_argument("--cache-dir", default=None,
                        help="crop-embedding cache root (unset: <out-dir>/crop_cache); share it between runs")
    crops = parser.add_argument_group("crops")
    crops.add_argument("--max-per-class", type=int_at_least(0), default=DEFAULT_MAX_PER_CLASS,
                       help="at most this many boxes per category, a seeded choice (0: every box)")
    crops.add_argument("--min-area", type=non_negative_float, default=float(DEFAULT_MIN_AREA),
                       help="keep boxes whose annotation area (else w*h) is larger than this, in pixels (as the exemplar recipe)")
    crops.add_argument("--context", type=non_negative_float, default=0.0,
                       help="grow the box by this fraction around its centre before making it square (default 0: the box made square)")
    add_views_arg(crops, 1, "views per crop: 1 is the plain crop through the model's preprocessing; N > 1 averages N "
                            "TTA views")
    crops.add_argument("--seed", type=int_at_least(0), default=0, help="seed of the per-class box choice and of the TTA views (default 0)")
    crops.add_argument("--skip-bad", action="store_true",
                       help="leave out the boxes of missing or unreadable images (each image is decoded first; listed in the "
                            "JSON's missing_images) instead of stopping at the first")
    crops.add_argument("--rebuild-cache", action="store_true",
                       help="delete this crop set's cached embeddings (e.g. after a corrupt shard) and encode them anew")
    add_workers_arg(crops, 2, "DataLoader workers that decode and crop images", "--nw")
    add_clip_args(parser, default_model=None, batch_help="views encoded per forward pass")
    parser.add_argument("--aggregator-space", nargs="+", default=[], metavar="NPY",
                        help="classifiers without sidecar whose rows are not in CLIP's space (e.g. the authors' "
                             "lvis_image_exemplar_features_agg_K-005_author.npy): also scored mapped")
    out = parser.add_argument_group("report")
    out.add_argument("--report", action="store_true",
                     help="also write report.html: the worst classes' misclassified crops (and exemplars) as thumbnails")
    out.add_argument("--worst-classes", type=int_at_least(0), default=10, help="classes per classifier shown in the report")
    return parser


def run(args: argparse.Namespace) -> None:
    from mmovod.classifiers.kinds import SPACE_NOTES
    from mmovod.evaluation.crop_cache import crop_views
    from mmovod.evaluation.eval_report import terminal_table
    from mmovod.evaluation.evaluate import EvalSettings, evaluate_classifiers
    from mmovod.io.wording import plural

    settings = EvalSettings(
        classifiers=args.classifiers, ann=args.ann, img_dir=args.img_dir, out_dir=args.out_dir, cache_dir=args.cache_dir,
        crops=crop_views(args.views, args.context, args.seed), min_area=args.min_area,
        max_per_class=args.max_per_class, seed=args.seed, clip_model=args.clip_model, pretrained=args.pretrained,
        device=args.device, batch_size=args.batch_size, workers=args.workers,
        aggregator_space=args.aggregator_space, skip_bad=args.skip_bad,
        rebuild_cache=args.rebuild_cache, report=args.report, worst_classes=args.worst_classes,
    )
    result = evaluate_classifiers(settings)
    crops = result.doc["crops"]
    print(f"{crops['crops']} crops of {crops['classes']} classes, CLIP {result.doc['clip']} "
          f"({'encoded' if result.encoded else 'cached'} embeddings: {result.doc['cache']}); values in %")
    print(terminal_table(result.doc["classifiers"]))
    for r in result.doc["classifiers"]:
        if r["space"] != "clip" and r["scored"] == "raw":
            print(f"{r['name']}: {SPACE_NOTES[r['space']]}; 'raw' is its test-time swap into a detector trained on "
                  "text rows, '(mapped)' a detector trained with it")
    gaps: dict[str, list[str]] = {}  # message -> classifiers it applies to
    for r in result.doc["classifiers"]:
        cover = r["coverage"]
        if cover["matched_by"] == "name":
            gaps.setdefault(cover["matching"], []).append(r["name"])
        if cover["left_out_zero_rows"]:
            gaps.setdefault(f"left out {plural(len(cover['left_out_zero_rows']), 'class', 'classes')} whose row is all zeros (no exemplars): "
                            + ", ".join(cover["left_out_zero_rows"]), []).append(r["name"])
        no_crops, no_row = len(cover["classifier_classes_without_crops"]), len(cover["ann_classes_without_row"])
        parts = [f"{no_crops} of its {r['classes']} classes {'has' if no_crops == 1 else 'have'} no crop in --ann (no AP)"] \
            if no_crops else []
        if no_row:
            parts.append(f"{plural(no_row, 'class', 'classes')} of --ann "
                         f"{'has' if no_row == 1 else 'have'} no row ({plural(cover['crops_without_row'], 'crop', 'crops')} left out)")
        if parts:
            gaps.setdefault("; ".join(parts), []).append(r["name"])
    for message, names in gaps.items():
        who = "every classifier" if len(names) == len(result.doc["classifiers"]) > 1 else ", ".join(names)
        print(f"{who}: {message}")
    print(f"wrote {', '.join(str(p) for p in result.written[:4])}"
          + (f" and {result.written[4]}" if len(result.written) > 4 else ""))


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    return run_tool(get_parser(), run, argv, prog)
