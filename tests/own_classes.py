"""Your own classes in miniature, for the build_classifiers tests: three classes of generated photos in folders,
their vocabulary and descriptions, a tiny CLIP and aggregators, and the tool run on them."""
import json
import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from mmovod.aggregator.model import VisualAggregator
from mmovod.demo.world_models import tiny_clip_config_path
from tools import build_classifiers

CLASSES = [("hard hat", ["safety helmet"], "Hard_Hat", 3), ("traffic cone", [], "traffic cone", 2),
           ("excavator", ["digger"], "digger", 2)]
VOCAB = "# three classes\nhard hat, safety helmet\ntraffic cone\nexcavator, digger  # folder named by synonym\n"
DESCRIPTIONS = {"hard hat": ["A rigid yellow helmet.", "It has a brim."], "traffic cone": ["An orange cone."],
                "excavator": ["A yellow machine with an arm.", "It digs.", "It has tracks."]}


def photo(path, seed, size):
    rng = np.random.default_rng(seed)
    pixels = np.clip(rng.integers(0, 256, 3) + rng.integers(-50, 50, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    ImageDraw.Draw(image).ellipse([size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2],
                                  fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, quality=90)


def make_own_classes(root: Path, tiny_clip_checkpoint: Path) -> dict:
    """Photos of three classes (and a folder matching none), a vocabulary, descriptions, an LVIS-format copy, a
    tiny CLIP (a copy of `tiny_clip_checkpoint`) and two one-layer aggregators (512-d and 256-d) under `root`."""
    for c, (_, _, folder, n) in enumerate(CLASSES):
        for i in range(n):
            photo(root / "photos" / folder / f"{i}.jpg", 10 * c + i, (48 + 8 * i, 40 + 6 * c))
    photo(root / "photos/boats/0.jpg", 99, (40, 40))
    (root / "vocab.txt").write_text(VOCAB)
    (root / "descriptions.json").write_text(json.dumps(DESCRIPTIONS))
    cats = [{"id": i + 1, "name": name, "synonyms": [name, *syn]} for i, (name, syn, _, _) in enumerate(CLASSES)]
    (root / "lvis.json").write_text(json.dumps({"images": [], "annotations": [], "categories": cats}))
    (root / "clip").mkdir()
    shutil.copy(tiny_clip_config_path(), root / "clip/tiny_clip.json")
    shutil.copy(tiny_clip_checkpoint, root / "clip/tiny_clip.pt")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        torch.save({"state_dict": VisualAggregator(num_layers=1).state_dict()}, root / "agg.pth")
        torch.save({"state_dict": VisualAggregator(dim=256, num_layers=1).state_dict()}, root / "agg256.pth")
    clip = ["--clip_model", str(root / "clip/tiny_clip.json"), "--pretrained", str(root / "clip/tiny_clip.pt"),
            "--device", "cpu"]
    return {"root": root, "clip": clip, "views": ["--num-augs", "2", "--seed", "3", "--nw", "0"]}


def build(own_classes, out, *extra, vocab=None, photos=None):
    """build_classifiers' exit code on `own_classes` (or another `vocab` / `photos`) into `out`."""
    root = own_classes["root"]
    argv = ["--vocab", str(vocab or root / "vocab.txt"), "--exemplars", str(photos or root / "photos"),
            "--out-dir", str(out), *own_classes["clip"], *own_classes["views"], *extra]
    return build_classifiers.main([str(a) for a in argv])


def truncated_jpeg(path):
    photo(path, 5, (64, 64))
    payload = path.read_bytes()
    path.write_bytes(payload[: len(payload) // 2])


def with_photo(own_classes, tmp_path, spoil):
    """A copy of the photos with one more, `spoil`ed, in the traffic cone folder."""
    photos = tmp_path / "photos"
    shutil.copytree(own_classes["root"] / "photos", photos)
    spoil(photos / "traffic cone" / "bad.jpg")
    return photos
