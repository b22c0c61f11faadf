"""Crops/s and peak memory of exemplar encoding end to end (decode, crop, views, encode): mmovod's one
pipeline (fast and original view order) against the original scripts' structure, and the feature-cache
tool against its previous implementation, all in one run on the same images and weights.

Variants, each in its own process; printed: encoding wall time and CPU time (workers included), peak
RSS while encoding (the largest process of the variant, a worker or the main one, from /usr/bin/time;
and the main process alone), and the peak of loading CLIP from a whole-model state dict, which is
about the same in every variant:
  orig-get_exemplars_tta   the original averaging script: full CLIP (both towers), one DataLoader item
                           per class, each exemplar opened and cropped once, views made at 896 px
                           (RandomResizedCrop 4x, jitter, then the model's resize), one encode per class
  orig-generate_agg        the original aggregator script: the same, but every view re-opens its image
  mmovod-original          encode_exemplars with --view-order original (same views as the two above)
  mmovod-fast              encode_exemplars with the default fast order
  cache-previous           the feature cache's previous encoder (one DataLoader item per image made its
                           float32 views in the original order; batches of batch_size // views images)
  cache-fast               cache_features (the tool's work after loading CLIP) on the same images
  encode-only              the image tower alone on the same number of ready-made views (no decoding, no
                           views, mmovod's batch size): the ceiling of any pipeline on this machine
Outputs are compared: the baselines and mmovod-original give the same class means; fast-order rows
are compared by cosine. Inputs: natural-looking 640x480 JPEGs (bench/natural_images.py), one box per
exemplar, every 5th an ImageNet-style whole image; CLIP ViT-B/32 shapes with random weights (open_clip
config ViT-B-32, seeded, no download). Example (docs/performance.md's figures):
  flock /tmp/mmovod-bench.lock python bench/bench_vision_encoding.py --classes 24 --exemplars 5 --views 5 --nw 2
On a GPU add --device cuda (crops/s and the GPU's mean utilisation while encoding are printed; CUDA's
start-up is warmed up outside the timing); --variants picks a subset; --distinct-images keeps large
scales quick to generate, e.g. the issue's scale:
  python bench/bench_vision_encoding.py --classes 1203 --device cuda --nw 14 --distinct-images 400 \
      --variants orig-get_exemplars_tta mmovod-fast cache-fast
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.natural_images import make_exemplars  # noqa: E402
from mmovod.readers.class_sources import SourceClass  # noqa: E402
from mmovod.features.distributed import init_distributed  # noqa: E402
from mmovod.features.feature_cache import shard_name, write_shard  # noqa: E402
from mmovod.clip.crops import TTA_CONTEXT, load_exemplar_crop  # noqa: E402
from mmovod.clip.factory import load_clip  # noqa: E402
from mmovod.demo.world_models import save_random_checkpoint  # noqa: E402
from mmovod.clip.image_encoding import encode_exemplars, image_batch_size  # noqa: E402
from mmovod.clip.specs import ViewSpec  # noqa: E402
from mmovod.clip.view_ops import Preprocessing  # noqa: E402
from bench.original_views import bundle_view_transform, make_view, make_views  # noqa: E402

VARIANTS = ("orig-get_exemplars_tta", "orig-generate_agg", "mmovod-original", "mmovod-fast", "cache-previous",
            "cache-fast", "encode-only")
MODEL = "ViT-B-32"
PREVIOUS_BATCH = 256  # the feature cache's earlier default, views per forward pass


# --- the original scripts' structure ------------------------------------------------------------

class OneClassDataset(Dataset):
    """Item c: all K x V views of class c (original order); `reopen`: every view opens its image anew."""

    def __init__(self, exemplars, roots, transform, views, seed, reopen):
        self.exemplars, self.roots, self.transform = exemplars, roots, transform
        self.views, self.seed, self.reopen = views, seed, reopen

    def __len__(self):
        return len(self.exemplars)

    def __getitem__(self, c):
        if not self.reopen:
            return torch.cat([make_views(load_exemplar_crop(r, self.roots, TTA_CONTEXT), self.transform, self.seed,
                                         c, e, self.views) for e, r in enumerate(self.exemplars[c])])
        return torch.stack([make_view(load_exemplar_crop(r, self.roots, TTA_CONTEXT), self.transform, self.seed,
                                      c, e, v) for e, r in enumerate(self.exemplars[c]) for v in range(self.views)])


def original_script(bundle, exemplars, roots, args, reopen):
    loader = DataLoader(OneClassDataset(exemplars, roots, bundle_view_transform(bundle), args.views, args.seed, reopen),
                        batch_size=None, num_workers=args.nw)
    means = []
    with torch.inference_mode():
        for x in loader:
            with bundle.autocast():
                means.append(bundle.model.encode_image(x.to(bundle.device)).float().cpu().mean(0))
    return torch.stack(means)


# --- the feature cache's previous encoder (CacheRowDataset + encode_rows) -------------------------

class PreviousCacheRows(Dataset):
    def __init__(self, items, roots, transform, views, seed):
        self.items, self.roots, self.transform, self.views, self.seed = items, roots, transform, views, seed

    def __len__(self):
        return len(self.items)

    def __getitem__(self, row):
        c, e, record = self.items[row]
        return make_views(load_exemplar_crop(record, self.roots, TTA_CONTEXT), self.transform, self.seed, c, e,
                          self.views)


def previous_cache(bundle, items, roots, args, out):
    loader = DataLoader(PreviousCacheRows(items, roots, bundle_view_transform(bundle), args.views, args.seed),
                        batch_size=max(1, (args.batch_size or PREVIOUS_BATCH) // args.views), num_workers=args.nw,
                        collate_fn=list,
                        pin_memory=bundle.device.type == "cuda")
    rows = []
    with torch.inference_mode():
        for views in loader:
            x = torch.cat(views).to(bundle.device, non_blocking=True)
            with bundle.autocast():
                rows.append(bundle.model.encode_image(x).float().cpu().reshape(len(views), args.views, -1))
    write_shard(out, 0, torch.cat(rows).numpy())
    return shard(out)


def new_cache(bundle, exemplars, roots, views, args, out):
    from mmovod.features.builder import cache_features

    classes = [SourceClass(f"c{c}", records) for c, records in enumerate(exemplars)]
    cache_features(bundle, classes, out, roots, init_distributed(str(bundle.device)), views,
                   shard_size=10 ** 9, batch_size=args.batch_size, source_kind="bench", progress=False)
    return shard(out)


def shard(folder: Path) -> torch.Tensor:
    """The one shard's float16 rows x views x dim, as float32."""
    return torch.from_numpy(np.load(folder / shard_name(0)).astype(np.float32))


# --- one variant, in a child process --------------------------------------------------------------

class GpuSampler:
    """Mean GPU utilisation (%) over the run, sampled every 0.2 s (needs nvidia-ml-py); None elsewhere."""

    def __init__(self, device):
        self.samples, self.stop = [], threading.Event()
        self.thread = None
        if device.type == "cuda":
            try:
                torch.cuda.utilization(device)
            except Exception:  # noqa: BLE001 - no NVML: utilisation not reported
                return
            self.thread = threading.Thread(target=self.run, args=(device,), daemon=True)
            self.thread.start()

    def run(self, device):
        while not self.stop.wait(0.2):
            self.samples.append(torch.cuda.utilization(device))

    def mean(self):
        self.stop.set()
        return float(np.mean(self.samples)) if self.samples else None


def main_process_peak_mb() -> float:
    """This process's peak RSS since the last `reset_peak` (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> None:
    """Restart VmHWM from the current RSS (Linux clear_refs 5), to see the encoding phase alone."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def cpu_seconds() -> float:
    """CPU time of this process and its reaped children (the DataLoader workers, once joined)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def warm_up(bundle) -> None:
    """One encode and one set of fast views on the device, outside the timing."""
    from mmovod.clip.view_ops import ViewRecipe, fast_views
    from mmovod.clip.views import draw_view_params

    crop = torch.randint(0, 256, (3, 300, 400), dtype=torch.uint8, device=bundle.device)
    recipe = ViewRecipe.from_params([draw_view_params(400, 300, 0, 0, 0, v) for v in range(4)])
    with torch.inference_mode(), bundle.autocast():
        bundle.model.encode_image(fast_views(crop, recipe, bundle.image_size).float())
    torch.cuda.synchronize(bundle.device)


def encode_only(bundle, count: int, batch_size: int | None) -> torch.Tensor:
    """`count` ready-made uint8 views through normalisation and the image tower, in mmovod's batches."""
    prep = Preprocessing.from_preprocess(bundle.preprocess, bundle.image_size)
    batch_size = batch_size or image_batch_size(bundle.device)
    views = torch.randint(0, 256, (batch_size, 3, bundle.image_size, bundle.image_size), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(0)).to(bundle.device)
    out = []
    with torch.inference_mode(), bundle.autocast():
        for start in range(0, count, batch_size):
            out.append(bundle.model.encode_image(prep.normalise(views[: min(batch_size, count - start)])).float())
    return torch.cat(out).cpu()


def run_variant(args) -> int:
    data = Path(args.data)
    exemplars = json.loads((data / "exemplars.json").read_text())
    roots = {"lvis": data / "coco", "imagenet21k": data / "coco"}
    tower = "both" if args.variant.startswith("orig-") else "image"  # the originals load the whole model
    bundle = load_clip(MODEL, str(data / "weights.pt"), args.device, tower=tower)
    load_peak = main_process_peak_mb()
    reset_peak()  # the peaks below are those of encoding
    views = ViewSpec(num_views=args.views, context=TTA_CONTEXT, seed=args.seed, workers=args.nw,
                     order="original" if args.variant in ("mmovod-original", "cache-previous") else "fast")
    items = [(c, e, r) for c, records in enumerate(exemplars) for e, r in enumerate(records)]
    if bundle.device.type == "cuda":  # CUDA's one-time start-up (kernels, cuBLAS) is not the pipeline's
        warm_up(bundle)
    sampler = GpuSampler(bundle.device)
    start, cpu_start = time.perf_counter(), cpu_seconds()
    with tempfile.TemporaryDirectory() as tmp:
        if args.variant == "orig-get_exemplars_tta":
            result = original_script(bundle, exemplars, roots, args, reopen=False)
        elif args.variant == "orig-generate_agg":
            result = original_script(bundle, exemplars, roots, args, reopen=True)
        elif args.variant.startswith("mmovod-"):
            result = encode_exemplars(bundle, exemplars, roots, views, batch_size=args.batch_size,
                                      progress=False).class_mean()
        elif args.variant == "cache-previous":
            result = previous_cache(bundle, items, roots, args, Path(tmp))
        elif args.variant == "encode-only":
            result = encode_only(bundle, len(items) * args.views, args.batch_size)
        else:
            result = new_cache(bundle, exemplars, roots, views, args, Path(tmp) / "cache")
        if bundle.device.type == "cuda":
            torch.cuda.synchronize(bundle.device)
        wall = time.perf_counter() - start
        cpu = cpu_seconds() - cpu_start
    np.save(data / f"{args.variant}.npy", result.numpy())
    report = {"wall": wall, "cpu": cpu, "gpu_util": sampler.mean(), "load_peak_mb": load_peak,
              "encode_peak_mb": main_process_peak_mb(),
              "peak_mb": main_process_peak_mb(),
              "gpu_peak_mb": torch.cuda.max_memory_allocated(bundle.device) / 2 ** 20
              if bundle.device.type == "cuda" else None}
    (data / f"{args.variant}.json").write_text(json.dumps(report))
    return 0


def spawn(args, variant, data) -> dict:
    """Run one variant as a process; its peak RSS (the largest process of its tree: it or a worker) comes
    from /usr/bin/time, which a large parent does not inflate (wait4's maxrss would count the fork)."""
    argv = [sys.executable, __file__, "--variant", variant, "--data", str(data), "--views", str(args.views),
            "--nw", str(args.nw), "--seed", str(args.seed), "--device", args.device,
            *(["--batch-size", str(args.batch_size)] if args.batch_size else [])]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    timing = data / "time.txt"
    timed = Path("/usr/bin/time").exists()
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(timing), *argv] if timed else argv, env=env,
                          stdout=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise SystemExit(f"variant {variant} failed")
    report = json.loads((data / f"{variant}.json").read_text())
    report["process_wall"] = time.perf_counter() - start
    if timed:  # the largest process of the tree, after the loading (where the variant restarts its peak)
        report["peak_mb"] = max(report["peak_mb"], int(timing.read_text().split()[-1]) / 1024)
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, default=24)
    parser.add_argument("--exemplars", type=int, default=5)
    parser.add_argument("--views", type=int, default=5)
    parser.add_argument("--nw", type=int, default=2, help="DataLoader workers of every variant")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="views per forward pass of mmovod and the caches (unset: each one's default: mmovod 32 "
                             "on CPU, 256 on CUDA; the previous cache 256)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--repeats", type=int, default=1, help="runs of each variant, alternating (median kept)")
    parser.add_argument("--distinct-images", type=int, default=None,
                        help="generate only this many JPEGs and let the records cycle through them (large scales)")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.variant:
        return run_variant(args)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        exemplars = make_exemplars(data / "coco", args.classes, args.exemplars, whole_every=5,
                                   distinct=args.distinct_images)
        (data / "exemplars.json").write_text(json.dumps(exemplars))
        save_random_checkpoint(MODEL, data / "weights.pt", seed=0)
        crops = args.classes * args.exemplars * args.views
        print(f"scale: {args.classes} classes x {args.exemplars} exemplars x {args.views} views = {crops} crops; "
              f"640x480 natural-looking JPEGs; {MODEL} shapes, random weights; {args.device}; --nw {args.nw}; "
              f"batch {args.batch_size or 'default'}; {os.cpu_count()} CPUs")
        runs = {v: [] for v in args.variants}
        for _ in range(args.repeats):
            for variant in args.variants:
                runs[variant].append(spawn(args, variant, data))
        print("| variant | crops/s (encoding) | wall (encoding / whole process) | CPU per crop | peak RSS while "
              "encoding (largest process / main process) | loading CLIP | GPU |")
        print("|---|---|---|---|---|---|---|")
        summary = {}
        for variant, reports in runs.items():
            r = sorted(reports, key=lambda x: x["wall"])[len(reports) // 2]
            summary[variant] = r
            gpu = "-" if r["gpu_util"] is None else f"{r['gpu_util']:.0f}% busy, {r['gpu_peak_mb']:,.0f} MB"
            print(f"| {variant} | {crops / r['wall']:.1f} | {r['wall']:.1f} s / {r['process_wall']:.1f} s | "
                  f"{1000 * r['cpu'] / crops:.0f} ms | {r['peak_mb']:,.0f} MB / {r['encode_peak_mb']:,.0f} MB | "
                  f"{r['load_peak_mb']:,.0f} MB | {gpu} |")
        outputs = {v: torch.from_numpy(np.load(data / f"{v}.npy")) for v in args.variants}
        for a, b in (("orig-get_exemplars_tta", "mmovod-original"), ("orig-generate_agg", "mmovod-original"),
                     ("cache-previous", "cache-fast"), ("mmovod-original", "mmovod-fast")):
            if a in outputs and b in outputs:
                x, y = outputs[a].flatten(0, -2), outputs[b].flatten(0, -2)
                cos = torch.nn.functional.cosine_similarity(x, y)
                print(f"{b} vs {a}: max |diff| {float((x - y).abs().max()):.2e}, cosine min {float(cos.min()):.6f}")
        for new, old in (("mmovod-fast", "orig-get_exemplars_tta"), ("mmovod-fast", "orig-generate_agg"),
                         ("mmovod-original", "orig-get_exemplars_tta"), ("cache-fast", "cache-previous")):
            if new in summary and old in summary:
                s_new, s_old = summary[new], summary[old]
                print(f"{new} / {old}: {s_old['wall'] / s_new['wall']:.2f}x crops/s, "
                      f"{s_old['cpu'] / s_new['cpu']:.2f}x less CPU per crop, "
                      f"{s_new['peak_mb'] / s_old['peak_mb']:.2f}x peak memory (while encoding: "
                      f"{s_new['encode_peak_mb'] / s_old['encode_peak_mb']:.2f}x)")
        if "encode-only" in summary:
            ceiling = summary["encode-only"]["wall"]
            for old in ("orig-get_exemplars_tta", "orig-generate_agg", "cache-previous"):
                if old in summary:
                    print(f"ceiling: encoding alone is {summary[old]['wall'] / ceiling:.2f}x the crops/s of {old}; "
                          f"no pipeline that encodes every view in float32 can exceed it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
