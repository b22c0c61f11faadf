"""Shared test data for the vision-classifier tests: a copy of the demo dataset plus an exemplar list.

The exemplar list is built here from the demo's LVIS val boxes (standing in for sample_exemplars'
output), with one generated ImageNet image and one Visual Genome image added so every record kind
is exercised. Sizes are kept tiny so the tests run in seconds on 2 cores.
"""
import json
import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mmovod.clip.factory import load_clip
from mmovod.readers.image_roots import IMAGE_ROOTS
from bench.original_views import make_view, view_transform


def build_demo(demo_dataset: Path, root: Path, num_classes: int = 6, per_class: int = 3) -> dict:
    """A copy of the session's demo tree at `root` with an exemplar list of `num_classes` classes."""
    shutil.copytree(demo_dataset, root, dirs_exist_ok=True)
    rng = np.random.default_rng(1)
    inet = root / "imagenet/imagenet21k_P/train/n00001/n00001_1.JPEG"
    inet.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(inet)
    vg = root / "VisualGenome/VG_100K/999999.jpg"
    vg.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (100, 150, 3), dtype=np.uint8)).save(vg)
    doc = json.loads((root / "lvis/lvis_v1_val.json").read_text())
    names = {i["id"]: f"val2017/{i['id']:012d}.jpg" for i in doc["images"]}
    anns = doc["annotations"]
    exemplars = []
    for c in range(num_classes):
        chosen = anns[c * per_class:(c + 1) * per_class][: 1 + c % per_class]  # 1..per_class exemplars
        exemplars.append([{"dataset": "lvis", "file_name": names[a["image_id"]], "bbox": a["bbox"],
                           "category_id": a["category_id"], "synset": f"s{c}", "area": a["area"]} for a in chosen])
    exemplars[0].append({"dataset": "imagenet21k", "file_name": "imagenet21k_P/train/n00001/n00001_1.JPEG",
                         "category_id": 1, "synset": "s0", "area": 10000})
    exemplars[1].append({"dataset": "visual_genome", "file_name": "VG_100K/999999.jpg", "x": 20.5, "y": 10, "w": 60,
                         "h": 40, "image_id": 1, "category_id": 2, "synset": "s1", "area": 2400})
    ex_path = root / "metadata/exemplars.json"
    ex_path.write_text(json.dumps(exemplars))
    roots = {"lvis": root / "coco", "imagenet21k": root / "imagenet", "visual_genome": root / "VisualGenome"}
    flags = [f"--{name}" for name in ("lvis-img-dir", "imagenet-img-dir", "visual-genome-img-dir")]
    root_args = [x for flag, name in zip(flags, IMAGE_ROOTS) for x in (flag, str(roots[name]))]
    clip_args = ["--clip_model", str(root / "clip/tiny_clip.json"), "--pretrained", str(root / "clip/tiny_clip.pt"),
                 "--device", "cpu"]
    return {"root": root, "exemplars": exemplars, "path": ex_path, "roots": roots, "root_args": root_args,
            "clip_args": clip_args, "aggregator": root / "checkpoints/visual_aggregator_demo.pth"}


def load_tiny(demo: dict):
    return load_clip(str(demo["root"] / "clip/tiny_clip.json"), str(demo["root"] / "clip/tiny_clip.pt"), "cpu")


def naive_view_embeddings(bundle, exemplars, roots, context, num_views, seed, tta=True):
    """One view at a time, one forward pass per view: a list over classes of (K * num_views, D) tensors."""
    from mmovod.clip.crops import load_exemplar_crop

    transform = view_transform(bundle.preprocess, bundle.image_size, tta)
    out = []
    with torch.inference_mode():
        for c, records in enumerate(exemplars):
            rows = []
            for e, record in enumerate(records):
                crop = load_exemplar_crop(record, roots, context)
                for v in range(num_views):
                    rows.append(bundle.model.encode_image(make_view(crop, transform, seed, c, e, v)[None])[0])
            out.append(torch.stack(rows))
    return out
