"""Generate an LVIS-train-scale annotation file for benchmarks (default: 100,170 images, 1,270,141
annotations with polygon masks, the 1203 real LVIS v1 categories, about 1.2 GB).

Polygons come from a pool of pre-rendered random polygons (20-100 points, 2 decimals, as in LVIS),
so the file has LVIS's byte statistics without spending minutes formatting floats.

Example:
  python bench/make_lvis_train_scale.py --out bench/out/lvis_v1_train_scale.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CATEGORIES = ROOT / "tests" / "data" / "lvis_v1_categories.json"


def polygon_pool(rng: np.random.Generator, size: int) -> list[str]:
    pool = []
    for _ in range(size):
        points = rng.integers(20, 101)
        coords = rng.integers(0, 64000, size=2 * points) / 100
        pool.append("[[" + ",".join(f"{c:.2f}" for c in coords) + "]]")
    return pool


def write_lvis_file(out: Path, num_images: int, num_annotations: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    cats = json.loads(CATEGORIES.read_text())
    cat_ids = np.array([c["id"] for c in cats])
    # LVIS is long-tailed: draw categories with Zipf-like weights
    weights = 1.0 / np.arange(1, len(cat_ids) + 1) ** 0.8
    ann_cats = rng.choice(cat_ids, size=num_annotations, p=weights / weights.sum())
    ann_images = rng.integers(1, num_images + 1, size=num_annotations)
    boxes = np.round(rng.uniform(1, 300, size=(num_annotations, 4)), 2)
    pool = polygon_pool(rng, 4096)
    pick = rng.integers(0, len(pool), size=num_annotations)
    with open(out, "w") as fh:
        fh.write('{"info":{"description":"synthetic LVIS-train-scale file"},"licenses":[{"id":1,"name":"x","url":""}],')
        fh.write('"images":[')
        fh.write(",".join(
            f'{{"id":{i},"coco_url":"http://images.cocodataset.org/train2017/{i:012d}.jpg","height":480,"width":640,'
            f'"license":1,"flickr_url":"","date_captured":"2013-11-14 11:18:45","neg_category_ids":[1,2],'
            f'"not_exhaustive_category_ids":[]}}'
            for i in range(1, num_images + 1)))
        fh.write('],"annotations":[')
        for start in range(0, num_annotations, 100_000):
            stop = min(start + 100_000, num_annotations)
            if start:
                fh.write(",")
            fh.write(",".join(
                f'{{"area":{b[2] * b[3]:.2f},"id":{k + 1},"segmentation":{pool[pick[k]]},"image_id":{ann_images[k]},'
                f'"bbox":[{b[0]:.2f},{b[1]:.2f},{b[2]:.2f},{b[3]:.2f}],"category_id":{ann_cats[k]}}}'
                for k, b in zip(range(start, stop), boxes[start:stop])))
        fh.write('],"categories":')
        fh.write(json.dumps(cats))
        fh.write("}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="bench/out/lvis_v1_train_scale.json")
    parser.add_argument("--images", type=int, default=100_170)
    parser.add_argument("--annotations", type=int, default=1_270_141)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_lvis_file(out, args.images, args.annotations, args.seed)
    print(f"wrote {out} ({out.stat().st_size / 1e9:.2f} GB)")


if __name__ == "__main__":
    main()
