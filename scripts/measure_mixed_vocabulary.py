"""Measure a mixed vocabulary: every class by name, photos for some, scored as a detector scores.

On the demo tree (`make demo`, or tools/make_demo_data.py --out-dir DEMO): the vocabulary is the 40 LVIS
classes of the val file; --with-photos of them (the first ones by category id) get up to -K exemplar
boxes from the train scenes; tools/build_classifiers.py builds every kind with the world CLIP and the
shipped world aggregator, and tools/eval_classifiers.py scores them on the val crops (raw crop
embeddings against the rows). Prints top-1 per kind over the crops of classes with photos and of classes
without, and writes the same as JSON (--out-json).

Example:
  python scripts/measure_mixed_vocabulary.py --demo datasets/demo --work /tmp/mixed --with-photos 12
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from mmovod.cli.commands import build_classifiers, eval_classifiers
from mmovod.cli.flags import make_parser
from mmovod.demo.world_models import world_aggregator_path

KINDS = ("text", "descriptions", "vision-average", "vision-aggregated", "multi-modal-average", "multi-modal-aggregated")


def get_parser() -> argparse.ArgumentParser:
    parser = make_parser(__doc__)
    parser.add_argument("--demo", type=Path, required=True, help="the demo tree (tools/make_demo_data.py --out)")
    parser.add_argument("--work", type=Path, required=True, help="scratch folder (created)")
    parser.add_argument("--with-photos", type=int, default=12, help="classes that get photos")
    parser.add_argument("-K", type=int, default=5, help="photos per class that has photos")
    parser.add_argument("--aggregator", type=Path, default=world_aggregator_path(), help="aggregator checkpoint")
    parser.add_argument("--out-json", type=Path, default=None, help="where to write the numbers (default: WORK/mixed.json)")
    return parser


def split_top1(result: dict[str, Any], with_photos: set[int]) -> dict[str, float]:
    """Crop-weighted top-1 (%) over the classes with photos and over those without."""
    out = {}
    for name, keep in (("with_photos", True), ("without_photos", False)):
        classes = [c for c in result["per_class"] if (c["id"] in with_photos) == keep and c["crops"]]
        crops = sum(c["crops"] for c in classes)
        out[name] = round(100 * sum(c["accuracy"] * c["crops"] for c in classes) / crops, 1) if crops else None
    return out


def measure(demo: Path, work: Path, with_photos: int, k: int, aggregator: Path) -> dict[str, Any]:
    """Build and evaluate the mixed vocabulary; {kind: {with_photos, without_photos, all}} top-1 in %."""
    work.mkdir(parents=True, exist_ok=True)
    val = demo / "lvis/lvis_v1_val.json"
    train = json.loads((demo / "lvis/lvis_v1_train.json").read_text())
    chosen = {c["id"] for c in sorted(train["categories"], key=lambda c: c["id"])[:with_photos]}
    images = [dict(i, file_name="/".join(i["coco_url"].split("/")[-2:])) for i in train["images"]]  # LVIS: no file_name
    boxes = dict(train, images=images, annotations=[a for a in train["annotations"] if a["category_id"] in chosen])
    (work / "exemplar_boxes.json").write_text(json.dumps(boxes))
    clip = ["--clip_model", str(demo / "clip/world_clip.json"), "--pretrained", str(demo / "clip/world_clip.pt"),
            "--device", "cpu"]
    descriptions = demo / "metadata/world_descriptions.json"
    out = work / "classifiers"
    assert build_classifiers.main([
        "--vocab", str(val), "--exemplars", str(demo / "coco"), "--exemplar-ann", str(work / "exemplar_boxes.json"),
        "-K", str(k), "--descriptions", str(descriptions), "--out-dir", str(out), "--aggregator", str(aggregator),
        "--no-judge", "--nw", "0", *clip]) == 0
    assert eval_classifiers.main([
        "--classifiers", *(str(out / f"{kind}.npy") for kind in KINDS), "--ann", str(val), "--img-dir", str(demo / "coco"),
        "--out-dir", str(work / "eval"), "--nw", "0", "--device", "cpu"]) == 0
    results = json.loads((work / "eval/eval_results.json").read_text())["classifiers"]
    return {r["name"]: {**split_top1(r, chosen), "all": round(100 * r["overall"]["top1"], 1)}
            for r in results if r["scored"] == "raw"}


def main(argv: Sequence[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    numbers = measure(args.demo, args.work, args.with_photos, args.K, args.aggregator)
    (args.out_json or args.work / "mixed.json").write_text(json.dumps(numbers, indent=1))
    print("| kind | top-1, classes with photos | top-1, classes without photos | top-1, all |")
    print("|---|---:|---:|---:|")
    for kind, n in numbers.items():
        print(f"| {kind} | {n['with_photos']} | {n['without_photos'] if n['without_photos'] is not None else '-'} | {n['all']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
