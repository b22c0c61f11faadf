"""Benchmark remove_lvis_rare and get_lvis_cat_info as whole processes against plain-`json` versions.

Generates (or reuses) an LVIS-train-scale file, then times each tool and its naive counterpart in
the same run, checks they agree, and prints a Markdown table row per tool.

Example (about 10 minutes and 9 GB peak for the naive runs at full scale):
  python bench/bench_lvis_steps.py
  python bench/bench_lvis_steps.py --annotations 200000 --images 20000   # a quick look
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import msgspec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from measure import measure, report  # noqa: E402


class AnnId(msgspec.Struct):
    id: int


def annotation_ids(path: Path) -> list[int]:
    top = msgspec.json.decode(path.read_bytes(), type=dict[str, msgspec.Raw])
    return [a.id for a in msgspec.json.decode(top["annotations"], type=list[AnnId])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="bench/out")
    parser.add_argument("--images", type=int, default=100_170)
    parser.add_argument("--annotations", type=int, default=1_270_141)
    args = parser.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    ann = work / f"lvis_train_{args.annotations}.json"
    py = sys.executable
    if not ann.exists():
        gen = [py, str(ROOT / "bench/make_lvis_train_scale.py"), "--out", str(ann),
               "--images", str(args.images), "--annotations", str(args.annotations)]
        measure("generate", gen)
    size_gb = ann.stat().st_size / 1e9
    print(f"input: {ann} ({size_gb:.2f} GB, {args.annotations:,} annotations, {args.images:,} images)")
    naive = str(ROOT / "bench/naive_lvis_steps.py")
    rows = []

    ours_out, naive_out = work / "ours_norare.json", work / "naive_norare.json"
    ours = measure("remove_lvis_rare", [py, str(ROOT / "tools/remove_lvis_rare.py"), "--ann", str(ann), "--out", str(ours_out)])
    base = measure("remove_lvis_rare (plain json)", [py, naive, "remove_rare", str(ann), str(naive_out)])
    assert annotation_ids(ours_out) == annotation_ids(naive_out), "remove_lvis_rare outputs differ"
    rows.append(report(ours, base, args.annotations, "ann"))
    for p in (ours_out, naive_out):
        p.unlink()

    ours_out, naive_out = work / "ours_cat_info.json", work / "naive_cat_info.json"
    ours = measure("get_lvis_cat_info", [py, str(ROOT / "tools/get_lvis_cat_info.py"), "--ann", str(ann), "--out", str(ours_out)])
    base = measure("get_lvis_cat_info (plain json)", [py, naive, "cat_info", str(ann), str(naive_out)])
    assert json.loads(ours_out.read_text()) == json.loads(naive_out.read_text()), "get_lvis_cat_info outputs differ"
    rows.append(report(ours, base, args.annotations, "ann"))

    print("| step | mmovod | plain json (original) | ratio |")
    print("|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
