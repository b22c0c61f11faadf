"""Costs of tools/eval_classifiers.py on CPU, with CLIP ViT-B/32 shapes and random weights (no download).

1. classifiers: wall time of evaluating 4 classifiers against 1 (each from a cold crop cache, as a
   whole process): one encoding pass serves every classifier, so 4 should cost at most 1.1x of 1.
2. warm: LVIS-val scale with a warm cache: 1203 classes x 50 boxes (60,150 crops) of a generated
   LVIS-format file, their embeddings generated directly into the cache the tool would build; one
   classifier (1203 x 512) evaluated as a whole process; wall time and peak RSS.
3. throughput: crops/s of the encoding step alone (decode, crop, views, encode) for --views 1 (the
   plain crop) and --views 5 (TTA), next to the exemplar pipeline (encode_exemplars) on the same crops.
On a shared machine timings drift, so each part reports figures from the same run side by side.

Example (what docs/performance.md's figures come from):
  flock /tmp/mmovod-bench.lock python bench/bench_eval_classifiers.py --nw 2
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.measure import measure  # noqa: E402
from mmovod.features.feature_cache import CacheMeta, prepare_cache_dir, write_shard  # noqa: E402
from mmovod.classifiers.sidecar import make_sidecar, save_classifier  # noqa: E402
from mmovod.clip.factory import load_clip  # noqa: E402
from mmovod.clip.image_encoding import encode_exemplars  # noqa: E402
from mmovod.evaluation.crop_encoding import encode_into_cache  # noqa: E402
from mmovod.evaluation import crop_cache  # noqa: E402
from mmovod.evaluation.crop_cache import crop_views  # noqa: E402
from mmovod.evaluation.crops_from_annotations import select_boxes  # noqa: E402
from mmovod.evaluation.evaluate import EvalSettings, crop_cache_location, evaluate_classifiers  # noqa: E402
from mmovod.evaluation.scoring import ClipIdentity  # noqa: E402

CLIP = {"clip_model": "ViT-B/32", "pretrained": "none", "embed_dim": 512}
TOOL = str(Path(__file__).resolve().parents[1] / "tools" / "eval_classifiers.py")


def lvis_file(root: Path, classes: int, per_class: int, images: int, draw: bool, seed: int = 0) -> Path:
    """An LVIS-format val file (r/c/f frequencies, image counts) with `per_class` boxes per class over
    `images` 640x480 images: drawn JPEGs when `draw`, else empty files (only their existence is checked)."""
    rng = np.random.default_rng(seed)
    (root / "coco/val2017").mkdir(parents=True)
    image_docs = []
    for i in range(images):
        name = f"{i + 1:012d}.jpg"
        if draw:
            pixels = np.clip(rng.integers(0, 256, 3) + rng.integers(-40, 40, (480, 640, 3)), 0, 255).astype(np.uint8)
            image = Image.fromarray(pixels)
            ImageDraw.Draw(image).ellipse([100, 80, 400, 300], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
            image.save(root / "coco/val2017" / name, quality=90)
        else:
            (root / "coco/val2017" / name).touch()
        image_docs.append({"id": i + 1, "coco_url": f"http://images.cocodataset.org/val2017/{name}",
                           "width": 640, "height": 480})
    anns = []
    for c in range(classes):
        for k in range(per_class):
            w, h = rng.uniform(40, 400), rng.uniform(40, 300)
            x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            anns.append({"id": len(anns) + 1, "image_id": int(rng.integers(1, images + 1)), "category_id": c + 1,
                         "bbox": [round(x, 2), round(y, 2), round(w, 2), round(h, 2)], "area": round(w * h, 2)})
    cats = [{"id": c + 1, "name": f"class_{c + 1}", "synset": f"class_{c + 1}.n.01", "frequency": "rcf"[c % 3],
             "image_count": int(rng.integers(1, 2000))} for c in range(classes)]
    path = root / "lvis_val.json"
    path.write_text(json.dumps({"images": image_docs, "annotations": anns, "categories": cats}))
    return path


def classifier(path: Path, classes: int, seed: int) -> Path:
    rows = np.random.default_rng(seed).standard_normal((classes, 512)).astype(np.float32)
    save_classifier(path, rows, make_sidecar(rows, "other", CLIP, category_ids=list(range(1, classes + 1))))
    return path


def tool_argv(ann: Path, root: Path, classifiers: list[Path], out: Path, nw: int) -> list[str]:
    return [sys.executable, TOOL, "--classifiers", *map(str, classifiers), "--ann", str(ann), "--img-dir",
            str(root / "coco"), "--out-dir", str(out), "--device", "cpu", "--nw", str(nw)]


def bench_classifiers(tmp: Path, nw: int, classes: int, per_class: int) -> None:
    """Cold cache, whole processes, 1 then 4 classifiers, three times (the shared machine's load varies:
    the minimum of each is reported); then, in-process on the now warm cache (after one untimed run
    that pays the imports), what each extra classifier adds (scoring and outputs)."""
    root = tmp / "few"
    root.mkdir()
    ann = lvis_file(root, classes, per_class, images=classes * per_class // 2, draw=True)
    paths = [classifier(root / f"c{i}.npy", classes, i) for i in range(4)]
    walls: dict[int, list[float]] = {1: [], 4: []}
    for trial in range(3):
        for n in (1, 4):
            run = measure(f"{n} classifiers", tool_argv(ann, root, paths[:n], root / f"out{n}_{trial}", nw))
            walls[n].append(run.wall_s)
    one, four = min(walls[1]), min(walls[4])
    crops = classes * per_class
    print(f"| cold cache, {crops} crops, whole process (min of 3) | 1 classifier: {one:.1f} s | 4 classifiers: "
          f"{four:.1f} s | ratio {four / one:.2f}x |")
    costs = {}
    for n in (4, 1, 4):  # the first run only pays the imports (matplotlib); the later ones are kept
        settings = EvalSettings(classifiers=[str(p) for p in paths[:n]], ann=str(ann), img_dir=str(root / "coco"),
                                out_dir=str(root / f"out{n}_0"), workers=nw, progress=False)
        t = evaluate_classifiers(settings).timings
        costs[n] = t["scoring_s"] + t["outputs_s"]
    print(f"| warm cache, in-process: scoring + outputs | 1 classifier: {costs[1]:.2f} s | 4 classifiers: "
          f"{costs[4]:.2f} s | {(costs[4] - costs[1]) / 3:.2f} s per extra classifier |")


def warm_cache(ann: Path, root: Path, out: Path, dim: int = 512) -> int:
    """Write the embeddings the tool would cache for `ann`, generated instead of encoded."""
    crops = select_boxes(ann, root / "coco")
    settings = EvalSettings(classifiers=[], ann=str(ann), img_dir=str(root / "coco"), out_dir=str(out))
    plan = crop_cache.crop_plan(crops)
    cache, key = crop_cache_location(settings, crops, ClipIdentity(CLIP["clip_model"], CLIP["pretrained"]))
    (out / "crop_cache").mkdir(parents=True)
    views = settings.crops
    extra = {"source": crop_cache.SOURCE_KIND, "tta": views.tta, "seed": views.seed, "context": views.context}
    prepare_cache_dir(cache, plan, CacheMeta(CLIP, dim, views.num_views, extra))
    rng = np.random.default_rng(1)
    for shard in range(plan.num_shards):
        rows = plan.shard_rows(shard)
        write_shard(cache, shard, rng.standard_normal((len(rows), 1, dim)).astype(np.float16))
    crop_cache.write_key(cache, key)
    return crops.num_crops


def bench_warm(tmp: Path, classes: int, per_class: int, images: int) -> None:
    root = tmp / "warm"
    root.mkdir()
    ann = lvis_file(root, classes, per_class, images, draw=False)
    n = warm_cache(ann, root, root / "out")
    path = classifier(root / "lvis.npy", classes, 0)
    run = measure("warm", tool_argv(ann, root, [path], root / "out", 0))
    doc = json.loads((root / "out/eval_results.json").read_text())
    assert doc["crops"]["crops"] == n, "the tool did not use the generated cache"
    print(f"| warm cache, {classes} classes x {per_class} = {n:,} crops, 1 classifier | {run.wall_s:.1f} s wall, "
          f"peak RSS {run.peak_rss_mb:,.0f} MB |")


def bench_throughput(tmp: Path, nw: int, classes: int, per_class: int) -> None:
    """Encoding alone, same crops, same process: the evaluation's cache pipeline against the exemplar
    pipeline (`encode_exemplars`, what get_exemplars_tta runs), alternating, plain crops (1 view) and 5 TTA views."""
    root = tmp / "throughput"
    root.mkdir()
    ann = lvis_file(root, classes, per_class, images=classes * per_class // 2, draw=True, seed=2)
    crops = select_boxes(ann, root / "coco")
    bundle = load_clip(CLIP["clip_model"], CLIP["pretrained"], "cpu", tower="image")
    n = crops.num_crops
    for views in (1, 5):
        settings = crop_views(views)
        start = time.perf_counter()
        encode_into_cache(bundle, crops, root / f"cache_v{views}", settings, batch_size=256, workers=nw,
                          progress=False)
        ours = time.perf_counter() - start
        start = time.perf_counter()
        encode_exemplars(bundle, [c.records for c in crops.classes], crops.roots, dataclasses.replace(settings, workers=nw),
                         batch_size=256, progress=False)
        exemplar = time.perf_counter() - start
        print(f"| encoding, --views {views}{' (TTA)' if views > 1 else ''}, {n} crops, --nw {nw} | "
              f"eval cache pipeline: {ours:.1f} s, {n / ours:.2f} crops/s, {n * views / ours:.2f} views/s | "
              f"exemplar pipeline: {exemplar:.1f} s, {n / exemplar:.2f} crops/s, {n * views / exemplar:.2f} views/s |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nw", type=int, default=2, help="DataLoader workers for encoding")
    parser.add_argument("--parts", nargs="+", default=["classifiers", "warm", "throughput"],
                        choices=["classifiers", "warm", "throughput"])
    parser.add_argument("--classes", type=int, default=1203, help="warm part: classes")
    parser.add_argument("--per-class", type=int, default=50, help="warm part: boxes per class")
    parser.add_argument("--images", type=int, default=19809, help="warm part: images (LVIS val has 19,809)")
    parser.add_argument("--small-classes", type=int, default=20, help="cold parts: classes")
    parser.add_argument("--small-per-class", type=int, default=10, help="cold parts: boxes per class")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if "classifiers" in args.parts:
            bench_classifiers(Path(tmp), args.nw, args.small_classes, args.small_per_class)
        if "warm" in args.parts:
            bench_warm(Path(tmp), args.classes, args.per_class, args.images)
        if "throughput" in args.parts:
            bench_throughput(Path(tmp), args.nw, args.small_classes, args.small_per_class)


if __name__ == "__main__":
    main()
