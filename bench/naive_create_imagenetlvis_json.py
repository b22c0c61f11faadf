"""Naive baseline for create_imagenetlvis_json: plain json, one process, every image fully decoded
(with its EXIF rotation applied, as detectron2's read_image does) to learn its size."""
import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mmovod.readers.synset_table import synset_table  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--imagenet-path")
    parser.add_argument("--lvis-meta-path")
    parser.add_argument("--out-path")
    args = parser.parse_args()
    data = json.load(open(args.lvis_meta_path))
    table = synset_table()
    images, counts = [], {}
    for cat in sorted(data["categories"], key=lambda c: c["id"]):
        wnid = table[cat["synset"]].wnid
        if wnid is None:
            continue
        for split in ("train", "val", "imagenet21k_small_classes"):
            folder = os.path.join(args.imagenet_path, split, wnid)
            if not os.path.isdir(folder):
                continue
            for name in sorted(os.listdir(folder)):
                try:
                    with Image.open(os.path.join(folder, name)) as img:
                        h, w = np.asarray(ImageOps.exif_transpose(img).convert("RGB")).shape[:2]
                except OSError:
                    continue
                images.append({"id": len(images) + 1, "file_name": f"{split}/{wnid}/{name}",
                               "pos_category_ids": [cat["id"]], "width": w, "height": h})
                counts[cat["id"]] = counts.get(cat["id"], 0) + 1
    for cat in data["categories"]:
        cat["image_count"] = counts.get(cat["id"], 0)
    json.dump({"categories": data["categories"], "images": images, "annotations": []}, open(args.out_path, "w"))


if __name__ == "__main__":
    main()
