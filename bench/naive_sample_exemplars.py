"""The authors' sampling procedure as they wrote it (plain json, every record decoded, areas set on every
record, `choice` over the record objects): the naive baseline of bench/run_bench.py and the reference the
tests compare `tools/sample_exemplars.py` against."""
import argparse
import json

import numpy as np


def authors_sample(categories: list[dict], exemplars: dict[str, list[dict]], k: int, seed: int) -> list[list[dict]]:
    """Per category in ascending id, k records drawn by area. Mutates `exemplars` (adds 'area'), as the original."""
    for anns in exemplars.values():
        for ann in anns:
            if ann["dataset"] == "imagenet21k":
                ann["area"] = 100.0 * 100.0
            elif ann["dataset"] == "lvis":
                ann["area"] = float(ann["bbox"][2] * ann["bbox"][3])
            else:
                ann["area"] = float(ann["w"] * ann["h"])
    chosen = []
    for cat in sorted(categories, key=lambda c: c["id"]):
        rng = np.random.default_rng(seed)
        anns = exemplars[cat["synset"]]
        probs = np.array([a["area"] for a in anns]) / sum(a["area"] for a in anns)
        chosen.append(rng.choice(anns, size=min(k, len(anns)), p=probs, replace=False).tolist())
    return chosen


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lvis-ann-path")
    parser.add_argument("--exemplar-dict-path")
    parser.add_argument("-K", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out-path")
    args = parser.parse_args()
    with open(args.lvis_ann_path) as f:
        cats = json.load(f)["categories"]
    with open(args.exemplar_dict_path) as f:
        exemplars = json.load(f)
    with open(args.out_path, "w") as f:
        json.dump(authors_sample(cats, exemplars, args.K, args.seed), f)


if __name__ == "__main__":
    main()
