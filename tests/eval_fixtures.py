"""The evaluation tests' world: the demo tree with four random classifiers, and eval_classifiers run on it."""
import json
import shutil
from pathlib import Path

import numpy as np

from mmovod.classifiers.sidecar import make_sidecar, save_classifier
from tools import eval_classifiers as tool


def make_eval_demo(demo_dataset: Path, folder: Path) -> dict:
    """A copy of the demo tree in `folder` with four random classifiers (text, vision-average, multi-modal and
    vision-aggregated) over its categories, and what the tests need to know of it."""
    root = shutil.copytree(demo_dataset, folder / "demo")
    doc = json.loads((root / "lvis/lvis_v1_val.json").read_text())
    clip = {"clip_model": str(root / "clip/tiny_clip.json"), "pretrained": str(root / "clip/tiny_clip.pt"),
            "embed_dim": 512}
    ids = sorted(c["id"] for c in doc["categories"])
    rng = np.random.default_rng(0)
    paths = {}
    (root / "cls").mkdir()
    for name, kind, space in (("text", "text", "clip"), ("avg", "vision-average", "clip"),
                              ("mm", "multi-modal", "clip"), ("agg", "vision-aggregated", "aggregator")):
        rows = rng.standard_normal((len(ids), 512)).astype(np.float32)
        path = root / "cls" / f"{name}.npy"
        save_classifier(path, rows, make_sidecar(rows, kind, clip, space=space, category_ids=ids,
                                                 details={"num_layers": 4} if space == "aggregator" else {}))
        paths[name] = path
    return {"root": root, "doc": doc, "clip": clip, "ids": ids, "cls": paths,
            "aggregator": root / "checkpoints/visual_aggregator_demo.pth"}


def args(eval_demo, out, classifiers=("text",), *extra):
    return ["--classifiers", *(str(eval_demo["cls"][c]) if c in eval_demo["cls"] else str(c) for c in classifiers),
            "--ann", str(eval_demo["root"] / "lvis/lvis_v1_val.json"), "--img-dir", str(eval_demo["root"] / "coco"),
            "--out-dir", str(out), "--nw", "0", "--device", "cpu", *extra]


def run_ok(eval_demo, out, classifiers=("text",), *extra):
    assert tool.main(args(eval_demo, out, classifiers, *extra)) == 0
    return json.loads((Path(out) / "eval_results.json").read_text())
