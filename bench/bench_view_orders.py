"""How far the fast view order is from the original, and what each costs per view.

On natural-looking JPEGs (bench/natural_images.py), for every exemplar's --views TTA views:
  1. pixels at the model input (uint8, before normalisation): original order (PIL at 4x) vs fast order
     (tensor ops at 1x), both from the full-size decode; mean and 99.9th-percentile absolute
     difference in 0-255 levels, and the mean signed difference;
  2. the reduced JPEG decode (draft) of the fast order vs its full-size decode, on large photos
     (--large, default 2048x1536, boxes and whole images) where the rule lets it act;
  3. classifier rows (per class, mean raw CLIP embedding of K x V views, as get_exemplars_tta
     writes) from both orders: cosine per class, next to the cosine between different classes'
     rows as the scale of what matters;
  4. preprocessing cost per view on one thread: original order, fast order one view at a time,
     fast order batched over an exemplar's views (and on --device when it is not the CPU).

Example:
  flock /tmp/mmovod-bench.lock python bench/bench_view_orders.py --classes 24 --exemplars 5 --views 5
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.natural_images import make_exemplars  # noqa: E402
from mmovod.clip.crops import TTA_CONTEXT, decode_image, exemplar_crop_box  # noqa: E402
from mmovod.clip.exemplar_views import ViewPlan, exemplar_input  # noqa: E402
from mmovod.clip.factory import load_clip  # noqa: E402
from mmovod.clip.view_ops import Preprocessing, ViewRecipe, fast_views, original_view, pil_to_pixels  # noqa: E402
from mmovod.clip.views import draw_view_params  # noqa: E402
from mmovod.readers.image_roots import record_image_path  # noqa: E402


def crops_and_params(exemplars, roots, views, seed):
    """Per exemplar: (class, index, full-size PIL crop, its views' params)."""
    for c, records in enumerate(exemplars):
        for e, record in enumerate(records):
            image = decode_image(record_image_path(record, roots)).image
            crop = image.crop(exemplar_crop_box(record, image.width, image.height, TTA_CONTEXT))
            yield c, e, crop, [draw_view_params(crop.width, crop.height, seed, c, e, v) for v in range(views)]


def level_stats(diffs: list[torch.Tensor]) -> str:
    d = torch.cat([x.flatten() for x in diffs]).float()
    a = d.abs()
    p999 = float(np.quantile(a.numpy(), 0.999))
    return f"mean |diff| {float(a.mean()):.3f}, 99.9th percentile {p999:.0f}, mean signed {float(d.mean()):+.3f} levels"


def order_pixels(exemplars, roots, prep, views, seed):
    """uint8 views of every exemplar in both orders: (original (N, V, 3, S, S), fast (same))."""
    original, fast = [], []
    for _, _, crop, params in crops_and_params(exemplars, roots, views, seed):
        original.append(torch.stack([original_view(crop, p, prep) for p in params]))
        fast.append(fast_views(pil_to_pixels(crop), ViewRecipe.from_params(params), prep.size))
    return torch.stack(original), torch.stack(fast)


def draft_effect(exemplars, roots, prep, views, seed):
    """(fast views from the reduced decode vs from the full decode: level diffs, share of exemplars
    decoded reduced, decode ms full vs reduced)."""
    plan = ViewPlan(prep, views, order="fast", seed=seed)
    diffs, reduced, t_full, t_draft = [], 0, 0.0, 0.0
    for (c, e, crop, params), record in zip(crops_and_params(exemplars, roots, views, seed),
                                            (r for rs in exemplars for r in rs)):
        full = fast_views(pil_to_pixels(crop), ViewRecipe.from_params(params), prep.size)
        drafted = exemplar_input(record, roots, TTA_CONTEXT, plan, c, e).views
        diffs.append(drafted.int() - full.int())
        path = record_image_path(record, roots)
        t0 = time.perf_counter()
        decode_image(path)
        t1 = time.perf_counter()
        decoded = decode_image(path, lambda w, h: 8)
        t_draft += time.perf_counter() - t1
        t_full += t1 - t0
        reduced += int(not torch.equal(drafted, full))
        del decoded
    n = len(diffs)
    return level_stats(diffs), reduced / n, 1000 * t_full / n, 1000 * t_draft / n


def classifier_cosines(bundle, prep, original, fast, classes, exemplars):
    def rows(pixels):
        x = prep.normalise(pixels.flatten(0, 1).to(bundle.device))
        with torch.inference_mode():
            emb = torch.cat([bundle.model.encode_image(b).float().cpu() for b in x.split(64)])
        return emb.reshape(classes, -1, emb.shape[-1]).mean(1)
    a, b = rows(original).double(), rows(fast).double()
    same = torch.nn.functional.cosine_similarity(a, b)
    an = torch.nn.functional.normalize(a, dim=1)
    cross = an @ an.T
    other = cross[~torch.eye(classes, dtype=torch.bool)]
    return same, other


def per_view_ms(fn, reps: int) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps * 1000


def costs(exemplars, roots, prep, views, seed, device):
    items = list(crops_and_params(exemplars[:2], roots, views, seed))
    out = {}
    out["original order (PIL at 4x)"] = sum(per_view_ms(lambda: [original_view(crop, p, prep) for p in params], 2)
                                            for _, _, crop, params in items) / (len(items) * views)
    pixels = [(pil_to_pixels(crop), ViewRecipe.from_params(params)) for _, _, crop, params in items]
    out["fast order, one view at a time"] = sum(
        per_view_ms(lambda: [fast_views(px, ViewRecipe.from_params([p]), prep.size)
                             for p in params], 5)
        for (_, _, _, params), (px, _) in zip(items, pixels)) / (len(items) * views)
    out["fast order, batched per exemplar"] = sum(per_view_ms(lambda: fast_views(px, r, prep.size), 5)
                                                  for px, r in pixels) / (len(items) * views)
    if device.type != "cpu":
        on_device = [(px.to(device), r) for px, r in pixels]

        def batch():
            for px, r in on_device:
                fast_views(px, r, prep.size)
            torch.cuda.synchronize(device)
        out[f"fast order, batched per exemplar on {device}"] = per_view_ms(batch, 20) / (len(items) * views)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, default=24)
    parser.add_argument("--exemplars", type=int, default=5)
    parser.add_argument("--views", type=int, default=5)
    parser.add_argument("--large", type=int, nargs=2, default=(2048, 1536), metavar=("W", "H"),
                        help="size of the photos for the reduced-decode measurement")
    parser.add_argument("--device", default="cpu", help="where the model runs (and the batched views are timed)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    bundle = load_clip("ViT-B/32", "none", args.device, tower="image")
    prep = Preprocessing.from_preprocess(bundle.preprocess, bundle.image_size)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        exemplars = make_exemplars(root / "coco", args.classes, args.exemplars)
        roots = {"lvis": root / "coco", "imagenet21k": root / "coco"}
        n = args.classes * args.exemplars
        print(f"{n} exemplars ({args.classes} classes x {args.exemplars}) x {args.views} views, 640x480 "
              f"natural-looking JPEGs, input {prep.size} px")
        original, fast = order_pixels(exemplars, roots, prep, args.views, args.seed)
        print("fast vs original order at the model input: " + level_stats([fast.int() - original.int()]))
        same, other = classifier_cosines(bundle, prep, original, fast, args.classes, args.exemplars)
        print(f"classifier rows (ViT-B/32 shapes, random weights): 1 - cosine, fast vs original order of the same "
              f"class: mean {float(1 - same.mean()):.1e}, max {float(1 - same.min()):.1e}; between different "
              f"classes: mean {float(1 - other.mean()):.1e}, min {float(1 - other.max()):.1e}")
        large = make_exemplars(root / "large", 4, 5, size=tuple(args.large), seed=1, whole_every=2)
        stats, share, t_full, t_draft = draft_effect(large, {"lvis": root / "large", "imagenet21k": root / "large"},
                                                     prep, args.views, args.seed)
        print(f"reduced decode on {args.large[0]}x{args.large[1]} photos ({share:.0%} of 20 exemplars decoded "
              f"reduced; full decode {t_full:.1f} ms, at 1/8 {t_draft:.1f} ms): fast views vs the same from "
              f"the full decode: {stats}")
        for name, ms in costs(exemplars, roots, prep, args.views, args.seed, bundle.device).items():
            print(f"per-view preprocessing, {name}: {ms:.2f} ms (one thread)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
