"""Crops/s of exemplar encoding end to end (decode, crop, TTA, encode): batched across classes
(mmovod.clip.image_encoding) vs two one-class-per-step baselines, same run, same views: "original-style"
(what the original scripts do: a new DataLoader per class, each view re-reading its image) and
"one-class-per-step" (one persistent DataLoader whose item is a whole class, each image cropped once).

Generated COCO-size JPEGs (640x480), one box per exemplar, CLIP ViT-B/32 shapes with random weights
(no download). Also splits the time per crop into decode+crop / augment / encode, measured in the
main process on a subset. Example (a subset of the issue's 1203 x 5 x 5 scale):
  flock /tmp/mmovod-bench.lock python bench/bench_vision_encoding.py --classes 40 --exemplars 5 --views 5 --nw 2
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch.utils.data import DataLoader, Dataset

from mmovod.clip.factory import load_clip
from mmovod.clip.crops import TTA_CONTEXT, load_exemplar_crop
from mmovod.clip.image_encoding import encode_exemplars
from mmovod.clip.views import bundle_view_transform, make_view, make_views


def make_images(root: Path, classes: int, exemplars: int, seed: int = 0) -> list[list[dict]]:
    rng = np.random.default_rng(seed)
    (root / "train2017").mkdir(parents=True)
    out = []
    for c in range(classes):
        records = []
        for e in range(exemplars):
            name = f"train2017/{c:05d}_{e}.jpg"
            pixels = np.clip(rng.integers(0, 256, 3) + rng.integers(-40, 40, (480, 640, 3)), 0, 255).astype(np.uint8)
            image = Image.fromarray(pixels)
            w, h = rng.uniform(40, 400), rng.uniform(40, 300)
            x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            ImageDraw.Draw(image).ellipse([x, y, x + w, y + h], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
            image.save(root / name, quality=90)
            records.append({"dataset": "lvis", "file_name": name, "bbox": [x, y, w, h]})
        out.append(records)
    return out


class OneClassDataset(Dataset):
    """Baseline: item = all K x V views of one class (crop once per exemplar, same seeded views)."""

    def __init__(self, exemplars, roots, transform, views, seed):
        self.exemplars, self.roots, self.transform, self.views, self.seed = exemplars, roots, transform, views, seed

    def __len__(self):
        return len(self.exemplars)

    def __getitem__(self, c):
        return torch.cat([make_views(load_exemplar_crop(r, self.roots, TTA_CONTEXT), self.transform, self.seed, c, e,
                                     self.views) for e, r in enumerate(self.exemplars[c])])


def one_class_per_step(bundle, exemplars, roots, views, seed, nw):
    loader = DataLoader(OneClassDataset(exemplars, roots, bundle_view_transform(bundle), views, seed),
                        batch_size=None, num_workers=nw)
    with torch.inference_mode():
        return torch.stack([bundle.model.encode_image(x.to(bundle.device)).float().cpu().mean(0) for x in loader])


class OneViewDataset(Dataset):
    """Original-style item: one view of one exemplar of one class, its image opened and cropped anew."""

    def __init__(self, records, class_index, roots, transform, views, seed):
        self.records, self.c, self.roots, self.transform, self.views, self.seed = (
            records, class_index, roots, transform, views, seed)

    def __len__(self):
        return len(self.records) * self.views

    def __getitem__(self, i):
        e, v = divmod(i, self.views)
        crop = load_exemplar_crop(self.records[e], self.roots, TTA_CONTEXT)
        return make_view(crop, self.transform, self.seed, self.c, e, v)


def original_style(bundle, exemplars, roots, views, seed, nw):
    """What the original script does: per class a new DataLoader (its workers start anew) over the
    class's K x views views, each view re-reading its image, then one encode of the class."""
    transform = bundle_view_transform(bundle)
    means = []
    with torch.inference_mode():
        for c, records in enumerate(exemplars):
            loader = DataLoader(OneViewDataset(records, c, roots, transform, views, seed),
                                batch_size=len(records) * views, num_workers=nw)
            for batch in loader:
                means.append(bundle.model.encode_image(batch.to(bundle.device)).float().cpu().mean(0))
    return torch.stack(means)


def time_split(bundle, exemplars, roots, views, seed, batch_size):
    transform = bundle_view_transform(bundle)
    t = {"decode+crop": 0.0, "augment": 0.0, "encode": 0.0}
    stacks = []
    for c, records in enumerate(exemplars):
        for e, record in enumerate(records):
            t0 = time.perf_counter()
            crop = load_exemplar_crop(record, roots, TTA_CONTEXT)
            t1 = time.perf_counter()
            stacks.append(make_views(crop, transform, seed, c, e, views))
            t["augment"] += time.perf_counter() - t1
            t["decode+crop"] += t1 - t0
    t0 = time.perf_counter()
    with torch.inference_mode():
        for chunk in torch.cat(stacks).split(batch_size):
            bundle.model.encode_image(chunk.to(bundle.device))
    t["encode"] = time.perf_counter() - t0
    return t, sum(len(s) for s in stacks)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, default=40)
    parser.add_argument("--exemplars", type=int, default=5)
    parser.add_argument("--views", type=int, default=5)
    parser.add_argument("--nw", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--split-classes", type=int, default=4, help="classes timed for the decode/augment/encode split")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    bundle = load_clip("ViT-B/32", "none", args.device, tower="image")
    with tempfile.TemporaryDirectory() as tmp:
        exemplars = make_images(Path(tmp), args.classes, args.exemplars)
        roots = {"lvis": Path(tmp)}
        crops = args.classes * args.exemplars * args.views
        print(f"scale: {args.classes} classes x {args.exemplars} exemplars x {args.views} views = {crops} crops, "
              f"640x480 JPEGs, ViT-B/32 (random weights) on {bundle.device}, --nw {args.nw}, "
              f"{torch.get_num_threads()} torch threads")
        results = {}
        for name in ("original-style", "one-class-per-step", "batched"):
            t0 = time.perf_counter()
            if name == "batched":
                out = encode_exemplars(bundle, exemplars, roots, context=TTA_CONTEXT,
                                       transform=bundle_view_transform(bundle), num_views=args.views,
                                       seed=args.seed, batch_size=args.batch_size, num_workers=args.nw,
                                       progress=False).class_mean()
            elif name == "original-style":
                out = original_style(bundle, exemplars, roots, args.views, args.seed, args.nw)
            else:
                out = one_class_per_step(bundle, exemplars, roots, args.views, args.seed, args.nw)
            wall = time.perf_counter() - t0
            results[name] = (wall, out)
            print(f"{name:>20}: {wall:7.1f} s  {crops / wall:7.1f} crops/s")
        for base in ("one-class-per-step", "original-style"):
            torch.testing.assert_close(results["batched"][1], results[base][1], rtol=1e-4, atol=1e-4)
            print(f"ratio batched / {base}: {results[base][0] / results['batched'][0]:.2f}x (outputs equal)")
        split, n = time_split(bundle, exemplars[: args.split_classes], roots, args.views, args.seed, args.batch_size)
        total = sum(split.values())
        print(f"time split, one process, {n} crops: " + ", ".join(
            f"{k} {1000 * v / n:.1f} ms/crop ({100 * v / total:.0f}%)" for k, v in split.items()))
    peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak RSS: main process {peak_self:.0f} MiB, largest worker {peak_children:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
