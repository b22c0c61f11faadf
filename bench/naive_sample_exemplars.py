"""Naive baseline for sample_exemplars: the authors' script shape (plain json, every record decoded)."""
import argparse
import json

import numpy as np


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lvis-ann-path")
    parser.add_argument("--exemplar-dict-path")
    parser.add_argument("-K", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out-path")
    args = parser.parse_args()
    cats = json.load(open(args.lvis_ann_path))["categories"]
    exemplars = json.load(open(args.exemplar_dict_path))
    for anns in exemplars.values():
        for ann in anns:
            if ann["dataset"] == "imagenet21k":
                ann["area"] = 100.0 * 100.0
            elif ann["dataset"] == "lvis":
                ann["area"] = float(ann["bbox"][2] * ann["bbox"][3])
            else:
                ann["area"] = float(ann["w"] * ann["h"])
    chosen = []
    for cat in sorted(cats, key=lambda c: c["id"]):
        rng = np.random.default_rng(args.seed)
        anns = exemplars[cat["synset"]]
        probs = np.array([a["area"] for a in anns]) / sum(a["area"] for a in anns)
        chosen.append(rng.choice(anns, size=min(args.K, len(anns)), p=probs, replace=False).tolist())
    json.dump(chosen, open(args.out_path, "w"))


if __name__ == "__main__":
    main()
