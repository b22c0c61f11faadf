"""The original scripts' approach, kept as the benchmark baseline: plain `json` load of the whole file,
Python loops, plain `json.dump`.

  python bench/naive_lvis_steps.py remove_rare ANN OUT
  python bench/naive_lvis_steps.py cat_info ANN OUT
"""
import json
import sys


def remove_rare(ann: str, out: str) -> None:
    data = json.load(open(ann))
    freq = {c["id"]: c["frequency"] for c in data["categories"]}
    print("before", len(data["annotations"]))
    data["annotations"] = [a for a in data["annotations"] if freq[a["category_id"]] != "r"]
    print("after", len(data["annotations"]))
    json.dump(data, open(out, "w"))


def cat_info(ann: str, out: str) -> None:
    data = json.load(open(ann))
    cats = data["categories"]
    images = {c["id"]: set() for c in cats}
    instances = {c["id"]: 0 for c in cats}
    for a in data["annotations"]:
        images[a["category_id"]].add(a["image_id"])
        instances[a["category_id"]] += 1
    for c in cats:
        c["image_count"] = len(images[c["id"]])
        c["instance_count"] = instances[c["id"]]
    json.dump(cats, open(out, "w"))


if __name__ == "__main__":
    steps = {"remove_rare": remove_rare, "cat_info": cat_info}
    if len(sys.argv) != 4 or sys.argv[1] not in steps:
        sys.exit(__doc__)
    steps[sys.argv[1]](sys.argv[2], sys.argv[3])
