"""Train the demo world's visual aggregator (the checkpoint shipped as mmovod/data/world_aggregator.pth).

It runs the aggregator tools of the guide on a class-folder tree of the world:
  tree       mmovod.demo.dataset.write_demo_aggregator_tree with --classes looks that no demo class has
             (--images each, the last --heldout classes held out), seeded by --seed
  features   tools/cache_clip_features.py on the world CLIP (mmovod/data/world_clip.{json,pt}), 2 TTA views
  training   tools/train_visual_aggregator.py, 4 layers (the tools' --num-layers default), --steps steps,
             32 classes a step, sets of 1-5 exemplars classifying 1-5 raw query images each, at the world
             CLIP's logit scale (15), AdamW --lr with 10% warm-up
  check      tools/eval_visual_aggregator.py on the held-out classes, for the trained aggregator and for
             an untrained one (its initial weights), each beside plain averaging of the same exemplars
and saves the trained weights in float16 (with the objective they were trained with, so that builds
know their rows are in CLIP's space) and the two evaluations beside them (JSON, --report).
Example:
  python scripts/train_world_aggregator.py --work /tmp/world_agg --out mmovod/data/world_aggregator.pth
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from mmovod.aggregator.training import TrainConfig, build_model
from mmovod.demo.dataset import AGGREGATOR_HELDOUT, AGGREGATOR_TREE, write_demo_aggregator_tree
from mmovod.cli.commands import cache_clip_features, eval_visual_aggregator, train_visual_aggregator

DATA = Path(__file__).parents[1] / "mmovod" / "data"
NUM_LAYERS = 4
WORLD_LOGIT_SCALE = 15.0
"""The world CLIP's own logit scale (exp of its learned `logit_scale`, 14.9)."""


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="scratch folder (tree, caches, run)")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint to write (float16 state dict)")
    parser.add_argument("--report", type=Path, default=None, help="JSON of both evaluations (default: beside --out)")
    parser.add_argument("--clip-model", default=str(DATA / "world_clip.json"), help="default: %(default)s")
    parser.add_argument("--pretrained", default=str(DATA / "world_clip.pt"), help="default: %(default)s")
    parser.add_argument("--classes", type=int, default=200, help="classes of the tree (default: %(default)s)")
    parser.add_argument("--heldout", type=int, default=40, help="held-out classes (default: %(default)s)")
    parser.add_argument("--images", type=int, default=12, help="images per class (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=1000, help="training steps (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the tree and the training (default: %(default)s)")
    parser.add_argument("--nw", type=int, default=1, help="image-decoding workers (default: %(default)s)")
    return parser


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(1)
    start_wall, start_cpu = time.time(), time.process_time()
    args.work.mkdir(parents=True, exist_ok=True)
    write_demo_aggregator_tree(args.work, args.seed, args.classes, args.images, args.heldout)
    clip = ["--clip_model", args.clip_model, "--pretrained", args.pretrained, "--device", "cpu"]
    tree, heldout = str(args.work / AGGREGATOR_TREE), str(args.work / AGGREGATOR_HELDOUT)
    common = ["--image-root", tree, "--views", "2", "--tta", "--nw", str(args.nw), *clip]
    assert cache_clip_features.main([*common, "--exclude-classes", heldout, "--out", str(args.work / "cache_train")]) == 0
    assert cache_clip_features.main([*common, "--classes", heldout, "--out", str(args.work / "cache_heldout")]) == 0
    run_dir = args.work / "run"
    assert train_visual_aggregator.main([
        "--cache", str(args.work / "cache_train"), "--out", str(run_dir), "--steps", str(args.steps),
        "--batch-classes", "32", "--k-min", "1", "--k-max", "5", "--num-layers", str(NUM_LAYERS),
        "--lr", str(args.lr), "--logit-scale", str(WORLD_LOGIT_SCALE), "--warmup-steps", str(max(1, args.steps // 10)),
        "--seed", str(args.seed), "--checkpoint-every", "0", *clip]) == 0
    untrained = args.work / "untrained.pth"
    dim = json.loads(Path(args.clip_model).read_text())["embed_dim"]
    torch.save({"state_dict": build_model(TrainConfig(num_layers=NUM_LAYERS, seed=args.seed), dim).state_dict()}, untrained)
    results = {}
    for name, checkpoint in (("trained", run_dir / "visual_aggregator.pth"), ("untrained", untrained)):
        out = args.work / f"eval_{name}.json"
        assert eval_visual_aggregator.main([
            "--cache", str(args.work / "cache_heldout"), "--load-path", str(checkpoint), "--num-layers", str(NUM_LAYERS),
            "--out-path", str(out), "--ks", "1", "2", "5", "--queries", "5", "--trials", "5", "--device", "cpu"]) == 0
        results[name] = json.loads(out.read_text())
    trained = torch.load(run_dir / "visual_aggregator.pth", map_location="cpu", weights_only=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {k: v.to(torch.float16) for k, v in trained["state_dict"].items()},
                "objective": trained["objective"]}, args.out)
    results["settings"] = {k: str(v) for k, v in vars(args).items()}
    results["time"] = {"wall_s": round(time.time() - start_wall, 1), "cpu_s_main_process": round(time.process_time() - start_cpu, 1)}
    report = args.report or args.out.with_suffix(".eval.json")
    report.write_text(json.dumps(results, indent=1))
    return results


def main(argv: list[str] | None = None) -> int:
    results = run(get_parser().parse_args(argv))
    for name in ("trained", "untrained"):
        print(name, json.dumps(results[name].get("by_k", results[name])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
