"""Naive baseline for collate_exemplar_dict, structured like the original script: plain json for
every file, whole documents in memory, a per-annotation image lookup, every single-synset VG object
indexed, records built as dict copies."""
import argparse
import glob
import json
import os
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mmovod.readers.synset_table import cousin_table, synset_table  # noqa: E402


def imagenet_anns(root, wnid, cat_id, synset):
    anns = []
    for split in ("train", "imagenet21k_small_classes"):
        for filename in sorted(glob.glob(os.path.join(root, "imagenet21k_P", split, wnid, "*.JPEG"))):
            anns.append({"file_name": "/".join(filename.split("/")[-4:]), "category_id": cat_id,
                         "dataset": "imagenet21k", "synset": synset})
    return anns


def vg_anns(objects, iid2path, boxes, cat_id, synset):
    anns = []
    for i, j, area in boxes:
        if area < 32 ** 2:
            continue
        img = objects[i]
        ann = {"image_id": img["image_id"], "dataset": "visual_genome", "file_name": iid2path[img["image_id"]],
               "category_id": cat_id, "synset": synset}
        ann.update(img["objects"][j])
        anns.append(ann)
    return anns


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lvis-dir")
    parser.add_argument("--imagenet-dir")
    parser.add_argument("--visual-genome-dir")
    parser.add_argument("--output-path")
    args = parser.parse_args()
    table, cousins = synset_table(), cousin_table()
    lvis = json.load(open(os.path.join(args.lvis_dir, "lvis_v1_train.json")))
    cats = sorted(lvis["categories"], key=lambda c: c["id"])
    catid2synset = {c["id"]: c["synset"] for c in cats}
    imgs = {img["id"]: img for img in lvis["images"]}
    ex_lvis = defaultdict(list)
    for ann in lvis["annotations"]:
        if ann["area"] > 32 ** 2:  # the original's lvis-api area_rng=[32**2, inf] is open at both ends
            img = imgs[ann["image_id"]]
            ann["dataset"] = "lvis"
            ann["file_name"] = "/".join(img["coco_url"].split("/")[-2:])
            ann["synset"] = catid2synset[ann["category_id"]]
            ex_lvis[ann["synset"]].append(ann)
    ex_in = {c["synset"]: imagenet_anns(args.imagenet_dir, table[c["synset"]].wnid, c["id"], c["synset"])
             if table[c["synset"]].wnid else [] for c in cats}
    lacking = [c for c in cats if len(ex_lvis[c["synset"]]) + len(ex_in[c["synset"]]) < 40]
    objects = json.load(open(os.path.join(args.visual_genome_dir, "objects.json")))
    images = json.load(open(os.path.join(args.visual_genome_dir, "image_data.json")))
    iid2path = {v["image_id"]: "/".join(v["url"].split("/")[-2:]) for v in images}
    synsets2boxes = defaultdict(list)
    for i, img in enumerate(objects):
        for j, obj in enumerate(img["objects"]):
            if len(obj["synsets"]) == 1:
                synsets2boxes[obj["synsets"][0]].append((i, j, obj["w"] * obj["h"]))
    ex_vg = {c["synset"]: vg_anns(objects, iid2path, synsets2boxes[table[c["synset"]].wordnet], c["id"], c["synset"])
             for c in lacking}
    out = {}
    for c in cats:
        s = c["synset"]
        out[s] = ex_lvis[s] + ex_in[s] + ex_vg.get(s, [])
        if len(out[s]) < 10:
            for sub in cousins.get(s, []):
                out[s] += imagenet_anns(args.imagenet_dir, table[sub].wnid, c["id"], sub)
            for sub in cousins.get(s, []):
                out[s] += vg_anns(objects, iid2path, synsets2boxes[sub], c["id"], sub)
    json.dump(out, open(args.output_path, "w"))


if __name__ == "__main__":
    main()
