"""Benchmark: the aggregator-training loader and training steps on a generated feature cache.

Scale (default): 2,000 classes x 200 images x 512 dims x 1 view, float16 shards of 32,768 rows
(400,000 rows, 410 MB), written by the cache module's own shard writer. Each phase runs in its own
child process, which reports its wall time and peak RSS (VmHWM; pages of the memory-mapped cache
that a phase touches count in its RSS):
  loader        ours: EpisodeSampler + memory-mapped gather (what training runs), no model
  naive-rows    baseline: the same episodes, gathered one row at a time into a Python list (np.stack)
  naive-files   baseline: one .npy file per image, np.load per sampled image (on a 256-class subset,
                51,200 files written once; at full scale the layout would be 400,000 files)
  train         full training steps on CPU (loader + aggregator forward/backward + AdamW)

Run (takes a few minutes; holds the shared benchmark lock):
  flock /tmp/mmovod-bench.lock python bench/bench_aggregator_training.py --work /tmp/mmovod-bench-agg
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mmovod.aggregator.episodes import EpisodeSampler, load_episode  # noqa: E402
from mmovod.aggregator.train_config import TrainConfig  # noqa: E402
from mmovod.features.feature_cache import (CacheMeta, CachePlan, ClassItems, FeatureCache, prepare_cache_dir,  # noqa: E402
                                  shard_name, write_shard)

CLIP = {"clip_model": "generated", "pretrained": None, "embed_dim": 512}


def rss_now_mb() -> float:
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    """This process's peak RSS: VmHWM (reset by exec, unlike ru_maxrss, which a child inherits from
    the process that forked it), ru_maxrss where /proc is missing."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def generate(work: Path, classes: int, per_class: int, dim: int, shard_size: int) -> Path:
    """Class-clustered float16 features written shard by shard (never the whole array in memory)."""
    out = work / "cache"
    plan = CachePlan.from_classes([ClassItems(f"c{c:05d}", [f"c{c:05d}/{i}" for i in range(per_class)])
                                   for c in range(classes)], shard_size)
    if (out / "index.json").is_file() and all((out / shard_name(s)).is_file() for s in range(plan.num_shards)):
        return out
    root = prepare_cache_dir(out, plan, CacheMeta(CLIP, dim, 1))
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((classes, dim), dtype=np.float32) * 2
    labels = plan.row_labels()
    for s in range(plan.num_shards):
        rows = plan.shard_rows(s)
        noise = rng.standard_normal((len(rows), dim), dtype=np.float32)
        write_shard(root, s, (centres[labels[rows.start:rows.stop]] + noise)[:, None, :])
    return out


def write_per_image_files(work: Path, cache: FeatureCache, classes: int) -> Path:
    folder = work / "per_image"
    if folder.is_dir():
        return folder
    folder.mkdir()
    for c in range(classes):
        for row in range(int(cache.class_offsets[c]), int(cache.class_offsets[c + 1])):
            np.save(folder / f"{row}.npy", cache.gather(np.array([row]))[0])
    return folder


def config(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(batch_classes=args.batch_classes, k_min=args.k_min, k_max=args.k_max, view_sampling="all",
                       steps=args.steps, warmup_steps=1, num_layers=args.num_layers)


def phase_loader(args: argparse.Namespace) -> dict:
    base = rss_now_mb()
    cache = FeatureCache(Path(args.work) / "cache")
    classes = np.arange(len(cache.classes) if args.phase != "naive-files" else args.file_classes)
    sampler = EpisodeSampler(cache, classes, config(args))
    files = Path(args.work) / "per_image"
    embeddings = 0
    t0 = time.perf_counter()
    for step in range(args.loader_steps):
        ep = sampler.sample(step)
        if args.phase == "loader":
            x = load_episode(cache, ep, slice(None))
        elif args.phase == "naive-rows":
            flat_rows, flat_views = ep.rows.reshape(-1), ep.views.reshape(-1)
            items = []
            for r, v in zip(flat_rows.tolist(), flat_views.tolist()):
                shard = r // cache.shard_size
                items.append(np.array(cache.shards[shard][r - shard * cache.shard_size, v]))
            x = np.stack(items).reshape(*ep.rows.shape, cache.dim)
        else:
            x = np.stack([np.load(files / f"{r}.npy") for r in ep.rows.reshape(-1).tolist()]).reshape(*ep.rows.shape, cache.dim)
        embeddings += x.shape[0] * x.shape[1]
    wall = time.perf_counter() - t0
    return {"phase": args.phase, "steps": args.loader_steps, "embeddings": embeddings, "wall_s": wall,
            "embeddings_per_s": embeddings / wall, "episodes_per_s": args.loader_steps * args.batch_classes / wall,
            "peak_rss_mb": peak_rss_mb(), "rss_after_imports_mb": base}


def phase_train(args: argparse.Namespace) -> dict:
    import torch

    from mmovod.aggregator.training import train
    from mmovod.features.distributed import DistContext

    base = rss_now_mb()
    cache = FeatureCache(Path(args.work) / "cache")
    records: list[dict] = []
    out = Path(args.work) / "train_run"
    for old in out.glob("*"):
        old.unlink()
    t0 = time.perf_counter()
    train(cache, out, config(args), DistContext(0, 1, 0, torch.device("cpu")), checkpoint_every=0,
          on_step=records.append)
    wall = time.perf_counter() - t0
    steady = records[1:]  # the first step includes one-off start-up costs
    step_s = sum(r["step_s"] for r in steady)
    return {"phase": "train", "steps": len(records), "wall_s": wall, "torch_threads": torch.get_num_threads(),
            "episodes_per_s": len(steady) * args.batch_classes / step_s,
            "embeddings_per_s": sum(r["embeddings_per_s"] * r["step_s"] for r in steady) / step_s,
            "loader_wait_share": sum(r["loader_share"] * r["step_s"] for r in steady) / step_s,
            "mean_step_s": step_s / len(steady), "peak_rss_mb": peak_rss_mb(), "rss_after_imports_mb": base}


def run_child(args: argparse.Namespace, phase: str) -> dict:
    cmd = [sys.executable, __file__, "--phase", phase, "--work", args.work, "--batch-classes", str(args.batch_classes),
           "--k-min", str(args.k_min), "--k-max", str(args.k_max), "--steps", str(args.steps),
           "--loader-steps", str(args.loader_steps if phase != "naive-rows" else max(2, args.loader_steps // 10)),
           "--file-classes", str(args.file_classes), "--num-layers", str(args.num_layers)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"phase {phase} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="/tmp/mmovod-bench-agg", help="folder for the generated cache")
    parser.add_argument("--classes", type=int, default=2000)
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--shard-size", type=int, default=32768)
    parser.add_argument("--batch-classes", type=int, default=256)
    parser.add_argument("--k-min", type=int, default=1)
    parser.add_argument("--k-max", type=int, default=10)
    parser.add_argument("--loader-steps", type=int, default=200)
    parser.add_argument("--steps", type=int, default=6, help="full training steps")
    parser.add_argument("--num-layers", type=int, default=4)
    parser.add_argument("--file-classes", type=int, default=256, help="classes written as per-image files for the naive baseline")
    parser.add_argument("--phase", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase == "train":
        print(json.dumps(phase_train(args)))
        return
    if args.phase:
        print(json.dumps(phase_loader(args)))
        return
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cache = FeatureCache(generate(work, args.classes, args.per_class, args.dim, args.shard_size))
    write_per_image_files(work, cache, args.file_classes)
    size = sum(p.stat().st_size for p in (work / "cache").glob("shard-*.npy"))
    print(f"cache: {len(cache.classes)} classes x {args.per_class} images x {cache.dim} dims float16, "
          f"{len(cache.shards)} shards, {size / 1e6:.0f} MB (generated in {time.perf_counter() - t0:.1f} s)")
    print(f"episodes: {args.batch_classes} classes/step, K_a, K_b in [{args.k_min}, {args.k_max}] (independent), 1 view")
    results = [run_child(args, p) for p in ("loader", "naive-rows", "naive-files", "train")]
    ours = results[0]["embeddings_per_s"]
    print(f"{'phase':<12} {'steps':>6} {'wall s':>8} {'emb/s':>12} {'episodes/s':>11} {'peak RSS MB':>12} "
          f"{'(imports) MB':>13} {'ours/this':>10}")
    for r in results:
        print(f"{r['phase']:<12} {r['steps']:>6} {r['wall_s']:>8.2f} {r['embeddings_per_s']:>12,.0f} {r['episodes_per_s']:>11,.1f} "
              f"{r['peak_rss_mb']:>12.0f} {r['rss_after_imports_mb']:>13.0f} {ours / r['embeddings_per_s']:>10.1f}")
    train = results[-1]
    loader_step_s = args.batch_classes * (args.k_min + args.k_max) / ours
    print(f"train: {train['mean_step_s']:.2f} s/step on {train['torch_threads']} CPU threads, {args.num_layers}-layer aggregator; "
          f"loader wait (prefetched) {train['loader_wait_share']:.1%} of step time; loader alone would take "
          f"{loader_step_s / train['mean_step_s']:.1%} of a step")
    print(json.dumps({"results": results}))


if __name__ == "__main__":
    main()
