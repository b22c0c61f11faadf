"""The built-in demo dataset: a small, seeded, self-consistent tree in the documented layout.

It holds real LVIS categories (a 40-class slice of LVIS v1 with rare, common and frequent classes),
each drawn as one object kind of the demo world (`mmovod.demo.world`), in generated COCO-style
JPEG scenes that the LVIS boxes point into, a tiny ImageNet-21K-P tree and a tiny Visual Genome,
so every step of the guide can run end to end in seconds on a laptop. The world's trained CLIP and
aggregator (package data, made by scripts/train_world_clip.py and scripts/train_world_aggregator.py)
and its descriptions file are copied in beside them.

The ImageNet and Visual Genome parts are laid out so that the exemplar collation takes every path:
one class gets 40 ImageNet images (Visual Genome is not used for it), most classes are topped up
from Visual Genome, and the demo classes of the cousin table reach 10 exemplars only via cousins.
"""
from __future__ import annotations

import importlib.resources
import json
import logging
import math
from pathlib import Path

import numpy as np
from PIL import Image

from mmovod.demo.world import (CLASS_KINDS, Kind, background, draw_object, novel_kinds, object_photo, overlaps,
                               render_scene)
from mmovod.demo.world_text import world_descriptions
from mmovod.io.atomic import staged_folder
from mmovod.io.errors import InputError
from mmovod.io.json_files import save_json
from mmovod.readers.synset_table import cousin_table, synset_table

log = logging.getLogger(__name__)

DEMO_SEED = 0
DEMO_MARK = ".mmovod_demo"  # at the top of a demo tree: a rerun may replace that tree's entries
DEMO_IMAGES_PER_SPLIT = {"train2017": 30, "val2017": 60}


def demo_categories() -> list[dict]:
    """The demo's LVIS categories (real LVIS v1 entries, ascending id)."""
    text = importlib.resources.files("mmovod.data").joinpath("demo_lvis_categories.json").read_text()
    return json.loads(text)


def _noise_image(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """The world's cluttered background with no object on it."""
    return background(rng, width, height)


def write_demo_lvis(root: Path, rng: np.random.Generator) -> dict[str, int]:
    """Write coco/{train2017,val2017}/*.jpg and lvis/lvis_v1_{train,val}.json under `root`."""
    cats = demo_categories()
    cat_ids = [c["id"] for c in cats]
    ids_by_name = {c["name"]: c["id"] for c in cats}
    (root / "lvis").mkdir(parents=True, exist_ok=True)
    counts = {}
    image_id = 0
    ann_id = 0
    for split, lvis_split in (("train2017", "train"), ("val2017", "val")):
        (root / "coco" / split).mkdir(parents=True, exist_ok=True)
        images, annotations = [], []
        for _ in range(DEMO_IMAGES_PER_SPLIT[split]):
            image_id += 1
            file_name = f"{image_id:012d}.jpg"
            image, objects, _ = render_scene(rng, list(ids_by_name))
            width, height = image.size
            placed = [(ids_by_name[name], box) for name, box in objects]
            for cat_id, box in placed:
                x, y, w, h = box
                ann_id += 1
                annotations.append({
                    "id": ann_id,
                    "image_id": image_id,
                    "category_id": cat_id,
                    "bbox": [float(v) for v in box],
                    "area": float(w * h),
                    "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]],
                })
            image.save(root / "coco" / split / file_name, quality=90)
            present = sorted({c for c, _ in placed})
            absent = [c for c in cat_ids if c not in present]
            images.append({
                "id": image_id,
                "coco_url": f"http://images.cocodataset.org/{split}/{file_name}",
                "width": width,
                "height": height,
                "license": 1,
                "flickr_url": "",
                "date_captured": "2013-11-14 16:28:13",
                "neg_category_ids": [int(c) for c in rng.choice(absent, size=2, replace=False)],
                "not_exhaustive_category_ids": [],
            })
        doc = {
            "info": {"description": "mmovod demo LVIS (generated)", "version": "1.0"},
            "licenses": [{"id": 1, "name": "CC BY 4.0", "url": ""}],
            "images": images,
            "annotations": annotations,
            "categories": cats,
        }
        save_json(root / "lvis" / f"lvis_v1_{lvis_split}.json", doc)
        counts[f"lvis_{lvis_split}_images"] = len(images)
        counts[f"lvis_{lvis_split}_annotations"] = len(annotations)
    return counts


# ImageNet-21K-P: (split, wnid, number of images, demo class drawn). n00005787 (benthos) is not an
# LVIS wnid (its images hold no object); a cousin synset's images show its LVIS class.
DEMO_IMAGENET = (
    ("train", "n03791053", 40, "motor_scooter"),  # enough with LVIS to skip Visual Genome
    ("train", "n02682922", 4, "aerosol_can"),  # its first image carries an EXIF rotation
    ("val", "n02682922", 2, "aerosol_can"),
    ("imagenet21k_small_classes", "n07758680", 3, "grape"),
    ("train", "n04540053", 6, "beachball"),  # volleyball.n.02, cousin of beach_ball
    ("imagenet21k_small_classes", "n02870526", 4, "Bible"),  # book.n.11, cousin of bible
    ("train", "n00005787", 2, None),
)
IMAGENET_SIZE = (40, 30)
EXIF_ORIENTATION_TAG = 0x0112
VG_IMAGES = 160
VG_PLACEMENT_TRIES = 20
VG_SIZE = (200, 150)
VG_OBJECTS_PER_CLASS = 10
VG_URL = "https://cs.stanford.edu/people/rak248/{folder}/{image_id}.jpg"


def write_demo_imagenet(root: Path, rng: np.random.Generator) -> dict[str, int]:
    """Write imagenet/imagenet21k_P/<split>/<wnid>/<wnid>_<n>.JPEG (small photos of one world object)."""
    tree = root / "imagenet" / "imagenet21k_P"
    count = 0
    for split, wnid, n, name in DEMO_IMAGENET:
        folder = tree / split / wnid
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            image = _noise_image(rng, *IMAGENET_SIZE) if name is None else object_photo(rng, CLASS_KINDS[name], *IMAGENET_SIZE)
            exif = Image.Exif()
            if wnid == "n02682922" and split == "train" and i == 0:
                exif[EXIF_ORIENTATION_TAG] = 6  # displayed rotated by 90 degrees: 30 x 40
            image.save(folder / f"{wnid}_{i + 1}.JPEG", quality=85, exif=exif.tobytes())
            count += 1
    return {"imagenet_images": count}


def _vg_plan(cats: list[dict]) -> list[tuple[str, int, str]]:
    """(synset, number of >= 32*32 objects, demo class they show) to place in the demo Visual Genome."""
    table, cousins = synset_table(), cousin_table()
    plan = []
    for cat in cats:
        synset, name = cat["synset"], cat["name"]
        if synset in cousins:
            plan.append((table[synset].wordnet, 1, name))  # too few: the cousins below make up the rest
            subs = cousins[synset]
            plan.extend((sub, VG_OBJECTS_PER_CLASS // len(subs), name) for sub in subs)
        elif synset == "motor_scooter.n.01":
            plan.append((synset, 3, name))  # never used: the class has 40 exemplars before Visual Genome
        else:
            plan.append((table[synset].wordnet, VG_OBJECTS_PER_CLASS, name))
    return plan


def write_demo_visual_genome(root: Path, rng: np.random.Generator) -> dict[str, int]:
    """Write VisualGenome/{VG_100K,VG_100K_2}/<id>.jpg, image_data.json and objects.json.

    Every planned synset also gets one object just under 32*32 (31 x 33) and one with two synsets,
    neither of which may become an exemplar.
    """
    vg = root / "VisualGenome"
    width, height = VG_SIZE
    image_ids = [i + 1 for i in range(VG_IMAGES // 2)] + [2400 + i for i in range(VG_IMAGES - VG_IMAGES // 2)]
    objects: dict[int, list[dict]] = {iid: [] for iid in image_ids}
    object_id = 1000
    kinds: dict[int, Kind] = {}
    for synset, n, name in _vg_plan(demo_categories()):
        sizes = [(int(rng.integers(32, 101)), int(rng.integers(32, 81))) for _ in range(n)]
        sizes += [(31, 33), (int(rng.integers(32, 101)), int(rng.integers(32, 81)))]
        for k, (w, h) in enumerate(sizes):
            object_id += 1
            synsets = [synset] if k < n + 1 else [synset, "entity.n.01"]
            for _ in range(VG_PLACEMENT_TRIES):  # an image where it hides little of the objects already there
                iid, x, y = int(rng.choice(image_ids)), int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
                if not overlaps((x, y, w, h), [(o["x"], o["y"], o["w"], o["h"]) for o in objects[iid]], 0.1):
                    break
            objects[iid].append({
                "object_id": object_id, "x": x, "y": y, "w": w, "h": h,
                "names": [synset.rsplit(".", 2)[0].replace("_", " ")], "synsets": synsets,
                "merged_object_ids": [],
            })
            kinds[object_id] = CLASS_KINDS[name]
    image_data = []
    for n, iid in enumerate(image_ids):
        folder = "VG_100K" if n < VG_IMAGES // 2 else "VG_100K_2"
        (vg / folder).mkdir(parents=True, exist_ok=True)
        image = background(rng, width, height)
        for o in objects[iid]:
            size = min(o["w"], o["h"])
            x, y = o["x"] + (o["w"] - size) // 2, o["y"] + (o["h"] - size) // 2
            draw_object(image, kinds[o["object_id"]], x, y, size, float(rng.uniform(0, 2 * math.pi)), rng)
        image.save(vg / folder / f"{iid}.jpg", quality=85)
        image_data.append({"image_id": iid, "url": VG_URL.format(folder=folder, image_id=iid),
                           "width": width, "height": height, "coco_id": None, "flickr_id": None})
    save_json(vg / "image_data.json", image_data)
    save_json(vg / "objects.json", [{"image_id": iid, "objects": objects[iid]} for iid in image_ids])
    return {"visual_genome_images": len(image_ids), "visual_genome_objects": sum(map(len, objects.values()))}
def write_demo_clip(root: Path, seed: int) -> dict[str, int]:
    """Under root/clip: the world's trained CLIP (`world_clip.{json,pt}`, copied from the package) that
    the demo runs on, and a tiny randomly initialised one (`tiny_clip.{json,pt}`) that tests of file
    handling use."""
    from mmovod.demo.world_models import save_random_checkpoint, tiny_clip_config_path

    (root / "clip").mkdir(exist_ok=True)
    config = root / "clip" / "tiny_clip.json"
    config.write_bytes(tiny_clip_config_path().read_bytes())
    save_random_checkpoint(config, root / "clip" / "tiny_clip.pt", seed)
    for name in WORLD_CLIP_FILES:
        (root / "clip" / name).write_bytes(_package_file(name))
    return {"clip_checkpoints": 2}


DEMO_AGGREGATOR = "checkpoints/visual_aggregator_demo.pth"
WORLD_AGGREGATOR = "checkpoints/world_aggregator.pth"
WORLD_CLIP_FILES = ("world_clip.json", "world_clip.pt")
WORLD_DESCRIPTIONS = "metadata/world_descriptions.json"


def _package_file(name: str) -> bytes:
    return importlib.resources.files("mmovod.data").joinpath(name).read_bytes()


def write_demo_aggregator(root: Path, seed: int) -> dict[str, int]:
    """A RANDOMLY initialised 4-layer visual aggregator checkpoint (not trained: for running the tools only)."""
    import torch

    from mmovod.aggregator.model import VisualAggregator
    from mmovod.io.atomic import atomic_open

    path = root / DEMO_AGGREGATOR
    path.parent.mkdir(exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = VisualAggregator(num_layers=4)
    with atomic_open(path, "wb") as handle:
        torch.save({"state_dict": model.state_dict(), "note": "random weights, demo only"}, handle)
    (root / WORLD_AGGREGATOR).write_bytes(_package_file("world_aggregator.pth"))
    return {"aggregator_checkpoints_random": 1, "aggregator_checkpoints_trained": 1}


def write_world_descriptions(root: Path) -> dict[str, int]:
    """The world's descriptions file (the guide's format) under root/metadata."""
    descriptions = world_descriptions(demo_categories())
    save_json(root / WORLD_DESCRIPTIONS, descriptions)
    return {"description_sentences": sum(map(len, descriptions.values()))}


AGGREGATOR_TREE = "aggregator_images"
AGGREGATOR_HELDOUT = "aggregator_images_heldout.txt"
AGGREGATOR_CLASSES = 16
AGGREGATOR_HELDOUT_CLASSES = 4
AGGREGATOR_IMAGES_PER_CLASS = 8


def write_demo_aggregator_tree(root: Path, seed: int, classes: int = AGGREGATOR_CLASSES,
                               images_per_class: int = AGGREGATOR_IMAGES_PER_CLASS,
                               heldout: int = AGGREGATOR_HELDOUT_CLASSES) -> dict[str, int]:
    """A class-folder tree `aggregator_images/<class>/<class>_<i>.jpg` for aggregator training.

    Each class is a look of the world that no demo class has (`novel_kinds`), photographed on the
    world's background; the last `heldout` classes are listed in `aggregator_images_heldout.txt`
    (held out of training, used for evaluation). It has its own generator, so the rest of the demo
    does not change with it.
    """
    rng = np.random.default_rng([seed, 6])
    tree = root / AGGREGATOR_TREE
    names = [f"d{c:07d}" for c in range(classes)]
    for name, kind in zip(names, novel_kinds(classes, seed)):
        (tree / name).mkdir(parents=True, exist_ok=True)
        for i in range(images_per_class):
            size = int(rng.integers(56, 97))
            object_photo(rng, kind, size, size).save(tree / name / f"{name}_{i}.jpg", quality=90)
    (root / AGGREGATOR_HELDOUT).write_text("".join(n + "\n" for n in names[-heldout:]))
    return {"aggregator_tree_classes": classes, "aggregator_tree_images": classes * images_per_class}


CUSTOM_DIR = "custom"
# (vocabulary line, exemplar folder or None, demo class it shows): folders are spelt as people do
CUSTOM_CLASSES = (
    ("stop sign, stop signal", "stop_sign", "stop_sign"),
    ("grape, grapes", "Grapes", "grape"),
    ("door knob, doorknob", "door knob", "doorknob"),
    ("carpet runner, runner rug", "carpet runner", "runner_(carpet)"),
    ("traffic cone  # no photos: its multi-modal rows are text only", None, None),
)
CUSTOM_IMAGES_PER_CLASS = 4


def write_demo_custom(root: Path, seed: int) -> dict[str, int]:
    """Your own classes, demo size: `custom/vocab.txt` and `custom/exemplars/<class>/<n>.jpg`.

    Each class is a world object in photos of a few sizes; one class has no photos. It has its own
    generator, so the rest of the demo does not change with it.
    """
    rng = np.random.default_rng([seed, 7])
    custom = root / CUSTOM_DIR
    lines = ["# the demo's own vocabulary: one class per line, synonyms after commas"]
    images = 0
    for line, folder, name in CUSTOM_CLASSES:
        lines.append(line)
        if folder is None:
            continue
        (custom / "exemplars" / folder).mkdir(parents=True, exist_ok=True)
        for i in range(CUSTOM_IMAGES_PER_CLASS):
            width, height = int(rng.integers(64, 129)), int(rng.integers(64, 129))
            object_photo(rng, CLASS_KINDS[name], width, height).save(custom / "exemplars" / folder / f"{i}.jpg",
                                                                     quality=90)
            images += 1
    (custom / "vocab.txt").write_text("\n".join(lines) + "\n")
    return {"custom_classes": len(CUSTOM_CLASSES), "custom_images": images}


def check_demo_folder(out: Path) -> None:
    """InputError unless `out` is missing, empty or an earlier demo: the demo replaces its folders (coco/, lvis/,
    metadata/, ...) whole, so in any other folder they would be the user's own data."""
    if not out.is_dir() or (out / DEMO_MARK).is_file():
        return  # made when missing; a file or a folder under a file is refused as an output
    held = sorted(entry.name for entry in out.iterdir())
    if held:
        listed = ", ".join(held[:3]) + (f" and {len(held) - 3} more" if len(held) > 3 else "")
        raise InputError(f"--out-dir {out}: holds {listed} and is no earlier demo (no {DEMO_MARK} file); "
                         "the demo would replace folders of the same names: choose a new or empty folder")


def make_demo_dataset(out: str | Path, seed: int = DEMO_SEED) -> dict[str, int]:
    """Write the whole demo tree under `out` (made with its parents; an interrupted or failed run leaves `out` as it
    was); returns item counts per part.

    InputError (naming `out`) when it cannot be written, holds files and is no earlier demo, or `seed` is negative.
    """
    if seed < 0:
        raise InputError(f"--seed must not be negative, got {seed}")
    check_demo_folder(Path(out))
    with staged_folder(out) as root:  # moved into `out` only when complete; an OSError names `out`
        (root / DEMO_MARK).write_text("written by make_demo_data: running it again here replaces this demo\n")
        (root / "metadata").mkdir()
        rng = np.random.default_rng(seed)
        counts = write_demo_lvis(root, rng)
        counts.update(write_demo_imagenet(root, rng))
        counts.update(write_demo_visual_genome(root, rng))
        counts.update(write_world_descriptions(root))
        counts.update(write_demo_clip(root, seed))
        counts.update(write_demo_aggregator(root, seed))
        counts.update(write_demo_aggregator_tree(root, seed))
        counts.update(write_demo_custom(root, seed))
    return counts
