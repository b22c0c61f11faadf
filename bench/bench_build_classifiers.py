"""Wall time of every classifier kind for one vocabulary: tools/build_classifiers.py (one process: CLIP
loaded once, each image decoded once, views shared) vs the separate tools in sequence on the same inputs
(dump_clip_features, dump_clip_features_lvis_sentences, get_exemplars_tta, generate_vision_classifier_agg
--tta, norm_feat_sum_norm twice), same run, then the arrays compared.

Generated inputs: an LVIS-format vocabulary of --classes classes, --per-class whole-image JPEG exemplars
each (DIR/<class>/<n>.jpg, 320x240), 10 descriptions per class, the tiny CLIP (random weights, embed dim
512; --clip-config for another open_clip config) and a random 4-layer aggregator. Example (the issue's scale):
  flock /tmp/mmovod-bench.lock python bench/bench_build_classifiers.py --classes 200 --per-class 10
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.measure import measure  # noqa: E402
from mmovod.aggregator.model import VisualAggregator  # noqa: E402
from mmovod.demo.world_models import save_random_checkpoint, tiny_clip_config_path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUTPUTS = {"text": "text", "descriptions": "desc", "vision-average": "avg", "vision-aggregated": "agg",
           "multi-modal-average": "mm_avg", "multi-modal-aggregated": "mm_agg"}


def make_inputs(root: Path, classes: int, per_class: int, clip_config: Path, seed: int = 0) -> dict[str, Path]:
    rng = np.random.default_rng(seed)
    cats, descriptions, exemplars = [], {}, []
    for c in range(classes):
        name = f"object {c:03d}"
        cats.append({"id": c + 1, "name": name, "synonyms": [name]})
        descriptions[name] = [f"An object {c:03d} has feature {k} of {c % 7} and colour {(c * k) % 11}." for k in range(10)]
        folder = root / "photos" / name
        folder.mkdir(parents=True)
        records = []
        for e in range(per_class):
            pixels = np.clip(rng.integers(0, 256, 3) + rng.integers(-40, 40, (240, 320, 3)), 0, 255).astype(np.uint8)
            image = Image.fromarray(pixels)
            w, h = rng.uniform(40, 200), rng.uniform(40, 160)
            x, y = rng.uniform(0, 320 - w), rng.uniform(0, 240 - h)
            ImageDraw.Draw(image).ellipse([x, y, x + w, y + h], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
            image.save(folder / f"{e:02d}.jpg", quality=90)
            records.append({"dataset": "file", "file_name": str(folder / f"{e:02d}.jpg"), "category_id": c + 1})
        exemplars.append(records)
    paths = input_paths(root)
    paths["ann"].write_text(json.dumps({"images": [], "annotations": [], "categories": cats}))
    paths["descriptions"].write_text(json.dumps(descriptions))
    paths["exemplars"].write_text(json.dumps(exemplars))
    shutil.copy(clip_config, paths["clip_config"])
    save_random_checkpoint(paths["clip_config"], paths["clip_weights"], seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.save({"state_dict": VisualAggregator(num_layers=4).state_dict()}, paths["aggregator"])
    return paths


def input_paths(root: Path) -> dict[str, Path]:
    return {"ann": root / "vocab_lvis.json", "descriptions": root / "descriptions.json",
            "exemplars": root / "exemplars.json", "photos": root / "photos", "clip_config": root / "clip.json",
            "clip_weights": root / "clip.pt", "aggregator": root / "aggregator.pth"}


def separate_commands(p: dict[str, Path], out: Path, views: list[str], clip: list[str]) -> list[tuple[str, list[str]]]:
    py = [sys.executable]
    return [
        ("dump_clip_features", py + ["tools/dump_clip_features.py", "--ann", str(p["ann"]), "--out_path",
                                     str(out / "text.npy"), *clip]),
        ("dump_clip_features_lvis_sentences", py + ["tools/dump_clip_features_lvis_sentences.py", "--descriptions-path",
                                                    str(p["descriptions"]), "--ann-path", str(p["ann"]), "--out-path",
                                                    str(out / "desc.npy"), *clip]),
        ("get_exemplars_tta", py + ["tools/get_exemplars_tta.py", "--ann-path", str(p["exemplars"]), "--output-path",
                                    str(out / "avg.npy"), *views, *clip]),
        ("generate_vision_classifier_agg", py + ["tools/generate_vision_classifier_agg.py", "--exemplar-list",
                                                 str(p["exemplars"]), "--out-path", str(out / "agg.npy"), "--tta",
                                                 "--load-path", str(p["aggregator"]), *views, *clip]),
        ("norm_feat_sum_norm avg", py + ["tools/norm_feat_sum_norm.py", "--feat1-path", str(out / "desc.npy"),
                                         "--feat2-path", str(out / "avg.npy"), "--out-path", str(out / "mm_avg.npy")]),
        ("norm_feat_sum_norm agg", py + ["tools/norm_feat_sum_norm.py", "--feat1-path", str(out / "desc.npy"),
                                         "--feat2-path", str(out / "agg.npy"), "--out-path", str(out / "mm_agg.npy")]),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, default=200)
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--num-augs", type=int, default=5)
    parser.add_argument("--nw", type=int, default=2, help="DataLoader workers of every image step")
    parser.add_argument("--device", default="cpu", help="torch device of every step")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each side, alternating")
    parser.add_argument("--clip-config", type=Path, default=tiny_clip_config_path())
    parser.add_argument("--work-dir", type=Path, default=None, help="where inputs and outputs go (default: a temp dir)")
    args = parser.parse_args()
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bench_build_"))
    work.mkdir(parents=True, exist_ok=True)
    inputs = work / "inputs"
    p = make_inputs(inputs, args.classes, args.per_class, args.clip_config) if not inputs.exists() else \
        input_paths(inputs)
    clip = ["--clip_model", str(p["clip_config"]), "--pretrained", str(p["clip_weights"]), "--device", args.device]
    views = ["--num-augs", str(args.num_augs), "--nw", str(args.nw)]
    ours_times, theirs_times = [], []
    tag = f"{args.device.replace(':', '')}_nw{args.nw}"
    for r in range(args.repeats):
        sep = work / f"separate_{tag}_{r}"
        sep.mkdir()
        steps = [measure(label, argv) for label, argv in separate_commands(p, sep, views, clip)]
        theirs_times.append(sum(m.wall_s for m in steps))
        print(" + ".join(f"{m.label} {m.wall_s:.1f} s" for m in steps) + f" = {theirs_times[-1]:.1f} s")
        one = work / f"one_{tag}_{r}"
        m = measure("build_classifiers", [sys.executable, "tools/build_classifiers.py", "--vocab", str(p["ann"]),
                                          "--exemplars", str(p["photos"]), "--out-dir", str(one), "--descriptions",
                                          str(p["descriptions"]), "--load-path", str(p["aggregator"]), *views, *clip])
        ours_times.append(m.wall_s)
        print(f"build_classifiers {m.wall_s:.1f} s, peak RSS {m.peak_rss_mb:,.0f} MB")
    worst = 0.0
    for ours, theirs in OUTPUTS.items():
        a, b = np.load(one / f"{ours}.npy"), np.load(sep / f"{theirs}.npy")
        assert a.shape == b.shape and a.dtype == b.dtype, (ours, a.shape, b.shape, a.dtype, b.dtype)
        diff = float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())
        worst = max(worst, diff / float(np.abs(b.astype(np.float64)).max()))
        print(f"{ours}: {a.shape} {a.dtype}, max |difference| {diff:.2e}")
    o, t = statistics.median(ours_times), statistics.median(theirs_times)
    images = args.classes * args.per_class
    print(f"| all classifier kinds | {args.classes} classes x {args.per_class} exemplars x {args.num_augs} views, "
          f"tiny CLIP, {args.device}, --nw {args.nw} | one process: {o:.1f} s | separate tools in sequence: {t:.1f} s "
          f"| {t / o:.2f}x, max relative difference {worst:.1e} | {images} images |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
