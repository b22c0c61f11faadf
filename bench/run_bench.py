"""Benchmark the three exemplar tools as whole processes against the naive baselines in bench/, in one run.

For each step it runs ours, then the naive script, on the same inputs (made by bench/make_synthetic.py),
and prints wall time, items/s and peak RSS (the largest single process, from /usr/bin/time), then
checks that both wrote the same records.

Example:
  flock /tmp/mmovod-bench.lock python bench/run_bench.py --data bench/out/full
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import msgspec
import orjson

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


class VGImage(msgspec.Struct):
    objects: list[msgspec.Raw]


def measure(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of one process run to completion, from /usr/bin/time (the
    largest single process of the tree; measured outside this script, whose own memory a forked
    child would otherwise count). Raises if the command fails."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    report = ROOT / "bench" / "out" / ".time"
    proc = subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", str(report), *argv], cwd=ROOT, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stderr.decode()[-2000:]}")
    wall, kib = report.read_text().split()[-2:]
    return float(wall), int(kib) / 1024


def row(tool: str, scale: str, items: int, ours: tuple[float, float], naive: tuple[float, float]) -> str:
    return (f"| {tool} | {scale} | {ours[0]:.1f} s, {items / ours[0]:,.0f}/s, {ours[1]:,.0f} MiB "
            f"| {naive[0]:.1f} s, {items / naive[0]:,.0f}/s, {naive[1]:,.0f} MiB | {naive[0] / ours[0]:.1f}x |")


def count_files(folder: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(folder))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="bench/out/full")
    parser.add_argument("--steps", default="create,collate,sample")
    args = parser.parse_args(argv)
    d = (ROOT / args.data).resolve()
    out = d / "results"
    out.mkdir(exist_ok=True)
    steps = args.steps.split(",")
    rows = ["| tool | scale | ours: wall, items/s, peak RSS | naive: wall, items/s, peak RSS | speed-up |",
            "|---|---|---|---|---|"]
    if "create" in steps:
        n = count_files(d / "imagenet" / "imagenet21k_P")
        common = ["--imagenet-path", str(d / "imagenet" / "imagenet21k_P"), "--lvis-meta-path", str(d / "lvis" / "lvis_v1_val.json")]
        ours = measure([PY, "tools/create_imagenetlvis_json.py", *common, "--out-path", str(out / "inl_ours.json")])
        naive = measure([PY, "bench/naive_create_imagenetlvis_json.py", *common, "--out-path", str(out / "inl_naive.json")])
        a, b = orjson.loads((out / "inl_ours.json").read_bytes()), orjson.loads((out / "inl_naive.json").read_bytes())
        assert a == b, "create_imagenetlvis_json: ours and naive differ"
        rows.append(row("create_imagenetlvis_json", f"{n:,} JPEGs ({len(a['images']):,} IN-L)", n, ours, naive))
        print(rows[-1], flush=True)
    if "collate" in steps:
        top = msgspec.json.decode((d / "lvis" / "lvis_v1_train.json").read_bytes(), type=dict[str, msgspec.Raw])
        lvis_anns = len(msgspec.json.decode(top["annotations"], type=list[msgspec.Raw]))
        del top
        vg = msgspec.json.decode((d / "VisualGenome" / "objects.json").read_bytes(), type=list[VGImage])
        vg_objects = sum(len(img.objects) for img in vg)
        del vg
        common = ["--lvis-dir", str(d / "lvis"), "--imagenet-dir", str(d / "imagenet"),
                  "--visual-genome-dir", str(d / "VisualGenome")]
        ours = measure([PY, "tools/collate_exemplar_dict.py", *common, "--output-path", str(out / "ex_ours.json")])
        naive = measure([PY, "bench/naive_collate_exemplar_dict.py", *common, "--output-path", str(out / "ex_naive.json")])
        raw = msgspec.json.Decoder(dict[str, list[msgspec.Raw]])
        a, b = raw.decode((out / "ex_ours.json").read_bytes()), raw.decode((out / "ex_naive.json").read_bytes())
        assert list(a) == list(b) and all(len(a[k]) == len(b[k]) for k in a), "collate: class sizes differ"
        for k in list(a)[::50]:
            assert [orjson.loads(memoryview(r)) for r in a[k]] == [orjson.loads(memoryview(r)) for r in b[k]], k
        items = lvis_anns + vg_objects
        rows.append(row("collate_exemplar_dict", f"{lvis_anns:,} LVIS anns + {vg_objects:,} VG objects", items, ours, naive))
        print(rows[-1], flush=True)
    if "sample" in steps:
        common = ["--lvis-ann-path", str(d / "lvis" / "lvis_v1_val.json"), "-K", "5"]
        ours = measure([PY, "tools/sample_exemplars.py", *common, "--exemplar-dict-path", str(out / "ex_ours.json"),
                        "--allow-fewer", "--out-path", str(out / "k5_ours.json")])
        naive = measure([PY, "bench/naive_sample_exemplars.py", *common, "--exemplar-dict-path", str(out / "ex_ours.json"),
                         "--out-path", str(out / "k5_naive.json")])
        a, b = orjson.loads((out / "k5_ours.json").read_bytes()), orjson.loads((out / "k5_naive.json").read_bytes())
        same = sum(x == y for x, y in zip(a, b) if len(x) == 5)
        full = sum(1 for x in a if len(x) == 5)
        assert same == full, f"sample: {full - same} classes differ"
        rows.append(row("sample_exemplars", f"{len(a):,} classes, K=5", len(a), ours, naive))
        print(rows[-1], flush=True)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
