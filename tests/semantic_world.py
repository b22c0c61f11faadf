"""The step-by-step semantic tier's world: held-out scenes and photos of the demo world, the shipped world CLIP,
and the embeddings every step starts from (made once per session by `make_world`), plus the tier's one shape of
check (`Step`: a number with its floor, and the bug that must bring it below)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from mmovod.classifiers.text import text_classifier
from mmovod.clip.factory import ClipBundle, load_clip
from mmovod.clip.image_encoding import ExemplarEmbeddings, encode_exemplars
from mmovod.clip.specs import ViewSpec
from mmovod.demo.dataset import demo_categories
from mmovod.demo.world_models import world_clip_paths
from mmovod.demo.world import CLASS_KINDS, object_photo, render_scene

HELD_OUT_SEED = 90023  # scenes and photos no demo, CLIP or aggregator training draws
EVAL_PER_CLASS = 5  # crops per class to classify (40 classes: 200 crops)
EXEMPLARS_PER_CLASS = 3  # exemplar boxes per class, from other scenes than the crops
PHOTOS_PER_CLASS = 3  # photos of one object per class, as a user's own photos
PHOTO_SIZE = 64
MIN_AREA = 32 * 32
PLAIN = ViewSpec(num_views=1, tta=False, context=0.0, workers=0)  # eval_classifiers' crops: one plain view


@dataclass
class World:
    """The held-out data, the world CLIP and the embeddings computed without any bug."""

    root: Path
    bundle: ClipBundle
    categories: list[dict[str, Any]]  # ascending id
    crops: list[list[dict[str, Any]]]  # per class, EVAL_PER_CLASS box records (the crops to classify)
    exemplars: list[list[dict[str, Any]]]  # per class, EXEMPLARS_PER_CLASS box records from other scenes
    photos: list[list[dict[str, Any]]]  # per class, PHOTOS_PER_CLASS whole-photo records
    crop_embeddings: np.ndarray  # (N, D) unit embeddings of the crops, in (class, crop) order
    labels: np.ndarray  # (N,) class index of each crop
    photo_embeddings: ExemplarEmbeddings  # the photos, one plain view each
    text_rows: np.ndarray  # (C, D) the class-name classifier (Detic's prompt "a <name>")

    @property
    def names(self) -> list[str]:
        return [c["name"] for c in self.categories]

    @property
    def roots(self) -> dict[str, Path]:
        return {"lvis": self.root}

    def encode_crops(self, per_class: int = EVAL_PER_CLASS) -> tuple[np.ndarray, np.ndarray]:
        """(N, D) unit embeddings of the first `per_class` crops of each class, encoded now through the
        image-encoding pipeline, and their (N,) class indices."""
        records = [c[:per_class] for c in self.crops]
        encoded = encode_exemplars(self.bundle, records, self.roots, PLAIN, progress=False)
        return unit(encoded.embeddings[:, 0].numpy()), encoded.class_of.numpy()

    def top1(self, rows: np.ndarray, crops: tuple[np.ndarray, np.ndarray] | None = None) -> float:
        """Top-1 of crops (embeddings, labels; default: the unbroken crops) against `rows` (C, D) by cosine,
        as a detector scores a region."""
        queries, labels = (self.crop_embeddings, self.labels) if crops is None else crops
        return float(((queries @ unit(rows).T).argmax(axis=1) == labels).mean())


def unit(x: Any) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-300)


def _boxes_from_scenes(root: Path, rng: np.random.Generator, names: list[str], folder: str,
                       per_class: int) -> list[list[dict[str, Any]]]:
    """`per_class` boxes (larger than MIN_AREA) of every class, from scenes rendered into `root/folder`."""
    chosen: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    (root / folder).mkdir()
    scene = 0
    while any(len(v) < per_class for v in chosen.values()):
        image, objects, _ = render_scene(rng, [n for n, v in chosen.items() if len(v) < per_class])
        scene += 1
        file_name = f"{folder}/{scene:05d}.jpg"
        image.save(root / file_name, quality=90)
        for name, (x, y, w, h) in objects:
            if len(chosen[name]) < per_class and w * h > MIN_AREA:
                chosen[name].append({"dataset": "lvis", "file_name": file_name, "bbox": [x, y, w, h]})
    return [chosen[n] for n in names]


def _photos(root: Path, rng: np.random.Generator, names: list[str]) -> list[list[dict[str, Any]]]:
    (root / "photos").mkdir()
    out = []
    for c, name in enumerate(names):
        records = []
        for i in range(PHOTOS_PER_CLASS):
            file_name = f"photos/{c:02d}_{i}.jpg"
            object_photo(rng, CLASS_KINDS[name], PHOTO_SIZE, PHOTO_SIZE).save(root / file_name, quality=90)
            records.append({"dataset": "lvis", "file_name": file_name, "bbox": [0, 0, PHOTO_SIZE - 1, PHOTO_SIZE - 1]})
        out.append(records)
    return out


def make_world(root: Path) -> World:
    """Render the held-out world into `root` and encode what every step starts from (about 1 s)."""
    rng = np.random.default_rng(HELD_OUT_SEED)
    categories = sorted(demo_categories(), key=lambda c: c["id"])
    names = [c["name"] for c in categories]
    crops = _boxes_from_scenes(root, rng, names, "val", EVAL_PER_CLASS)
    exemplars = _boxes_from_scenes(root, rng, names, "exemplars", EXEMPLARS_PER_CLASS)
    photos = _photos(root, rng, names)
    config, weights = world_clip_paths()
    bundle = load_clip(str(config), str(weights), "cpu")
    world = World(root, bundle, categories, crops, exemplars, photos, np.zeros(0), np.zeros(0, dtype=np.int64),
                  encode_exemplars(bundle, photos, {"lvis": root}, PLAIN, progress=False),
                  text_classifier(names, bundle))
    world.crop_embeddings, world.labels = world.encode_crops()
    return world


@dataclass(frozen=True)
class Step:
    """One pipeline step's semantic check.

    `check(world)` returns (the measured number, its floor): the step works when the number is at least
    the floor. `plant(monkeypatch, world)` plants the slip in the library (for the test's duration only);
    with it the number must fall below the floor. `floor` says in words what the floor is.
    """

    check: Callable[[World], tuple[float, float]]
    plant: Callable[[pytest.MonkeyPatch, World], None]
    floor: str
