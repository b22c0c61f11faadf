"""Benchmark: CLIP text encoding of the real LVIS descriptions, length-bucketed vs per-class full context.

Data: the authors' 12,030 GPT-3 descriptions (1203 LVIS classes x 10) shipped in
datasets/metadata/. Model: ViT-B/32 shapes with random weights (seeded; no download), text tower
only, fp32 on CPU (or --device). Both methods run in the same invocation, in alternating child
processes (so each peak RSS is its own, and load from other jobs on a shared machine hits both
alike): the classes are dealt into --rounds interleaved parts, and each round runs ours and then
the baseline on one part; wall times (encoding only, model loading excluded) are summed:
  - ours: `mmovod.clip.text_encoding.encode_class_means` (the part's sentences sorted by token length,
    batches of --batch-size run only up to their longest sequence), tokenization included;
  - baseline: what the original script does: per class, tokenize its sentences to 77 tokens and run
    `model.encode_text` on them, then the mean.
Prints wall time, sentences/s, peak RSS, the speed ratio and the max relative difference
(max |ours - baseline| / max |baseline|) of the (C, 512) outputs.

Example (heavy: run it alone):
  flock /tmp/mmovod-bench.lock python bench/bench_text_encoder.py --classes 200
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DESCRIPTIONS = ROOT / "datasets/metadata/lvis_gpt3_text-davinci-002_descriptions_author.json"


def sentences_per_class(classes: int | None, rounds: int = 1, part: int = 0) -> list[list[str]]:
    """The first `classes` classes' descriptions (all by default), dealt into `rounds` parts: part `part`."""
    groups = list(json.loads(DESCRIPTIONS.read_text()).values())
    return (groups[:classes] if classes else groups)[part::rounds]


def load_model(model: str, device: str | None, seed: int):
    import torch

    from mmovod.clip.factory import load_clip

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return load_clip(model, "none", device, tower="text")


def baseline(bundle, groups: list[list[str]]) -> np.ndarray:
    """Per class: clip.tokenize(truncate=True)-style 77-token rows, model.encode_text, mean (the original loop)."""
    import open_clip
    import torch

    rows = []
    with torch.inference_mode(), bundle.autocast():
        for group in groups:
            tokens = open_clip.tokenize(group).to(bundle.device)
            rows.append(bundle.model.encode_text(tokens).float().mean(dim=0).cpu())
    return torch.stack(rows).numpy()


def worker(args: argparse.Namespace) -> None:
    from mmovod.clip.text_encoding import encode_class_means

    groups = sentences_per_class(args.classes, args.rounds, args.part)
    bundle = load_model(args.model, args.device, args.seed)
    if bundle.device.type == "cuda":
        import torch
        torch.cuda.synchronize()
    start = time.perf_counter()
    if args.worker == "ours":
        features = encode_class_means(bundle, groups, args.batch_size)
    else:
        features = baseline(bundle, groups)
    wall = time.perf_counter() - start
    np.save(args.out, features)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"wall_s": wall, "sentences": sum(len(g) for g in groups), "peak_rss_mib": peak_kib / 1024,
                      "device": str(bundle.device)}))


def run_child(method: str, args: argparse.Namespace, part: int, out: Path) -> dict:
    cmd = [sys.executable, __file__, "--worker", method, "--out", str(out), "--model", args.model,
           "--seed", str(args.seed), "--rounds", str(args.rounds), "--part", str(part)]
    if args.batch_size:
        cmd += ["--batch-size", str(args.batch_size)]
    if args.classes:
        cmd += ["--classes", str(args.classes)]
    if args.device:
        cmd += ["--device", args.device]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, default=None, help="first N classes only (default: all 1203)")
    parser.add_argument("--model", default="ViT-B-32", help="open_clip architecture (random weights)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="batch size of the bucketed encoder (default: the tools' default for the device)")
    parser.add_argument("--rounds", type=int, default=4, help="alternations of ours and the baseline")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    parser.add_argument("--worker", choices=["ours", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--part", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    totals = {m: {"wall_s": 0.0, "sentences": 0, "peak_rss_mib": 0.0} for m in ("ours", "baseline")}
    diff = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for part in range(args.rounds):
            for method in ("ours", "baseline"):
                r = run_child(method, args, part, Path(tmp) / f"{method}.npy")
                totals[method]["wall_s"] += r["wall_s"]
                totals[method]["sentences"] += r["sentences"]
                totals[method]["peak_rss_mib"] = max(totals[method]["peak_rss_mib"], r["peak_rss_mib"])
                device = r["device"]
            ours, base = np.load(Path(tmp) / "ours.npy"), np.load(Path(tmp) / "baseline.npy").astype(np.float64)
            diff = max(diff, float(np.abs(ours - base).max() / np.abs(base).max()))
    n = totals["ours"]["sentences"]
    batch = args.batch_size or ("device default: " + ("256" if device.startswith("cuda") else "32"))
    print(f"text encoding, {args.model} random weights, {n} sentences "
          f"({args.classes or 1203} classes, {args.rounds} alternating rounds), device {device}")
    print(f"{'method':<44} {'wall s':>8} {'sent/s':>8} {'peak RSS MiB':>13}")
    labels = {"ours": f"length-bucketed (batch {batch})", "baseline": "per-class full 77-token encode_text"}
    for method in ("ours", "baseline"):
        r = totals[method]
        print(f"{labels[method]:<44} {r['wall_s']:>8.2f} {n / r['wall_s']:>8.1f} {r['peak_rss_mib']:>13.0f}")
    print(f"speed-up {totals['baseline']['wall_s'] / totals['ours']['wall_s']:.2f}x, "
          f"max relative difference {diff:.2e}")


if __name__ == "__main__":
    main()
