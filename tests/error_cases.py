"""Broken files for the error-boundary tests: `.npy` files that lie, and the small worlds the newer tools run in."""
import io
import json
import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mmovod.features.feature_cache import write_array_cache
from mmovod.aggregator.model import VisualAggregator
from mmovod.classifiers.sidecar import make_sidecar, save_classifier
from mmovod.demo.world_models import tiny_clip_config_path
from tests.aggregator_toy import TOY_CLIP, gaussian_classes

GOOD = b"the output of an earlier good run\n"


def _npz(good: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, rows=good)
    return buffer.getvalue()


def _header_claiming(shape, descr="<f4") -> bytes:
    """A valid .npy header that claims `shape` (1e9 x 512 float32: 1.9 TiB), followed by 64 bytes of data."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue() + bytes(64)


def _object_npy(good: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"rows": 1}, None], dtype=object), allow_pickle=True)
    return buffer.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


# (name, bytes made from a good array of the right shape, words the error line holds)
BAD_NPY = [
    ("npz-archive", _npz, "a .npz archive, expected a single .npy array"),
    ("huge-header", lambda good: _header_claiming((10 ** 9, good.shape[-1])), "1.9 TiB"),
    ("huge-header-3d", lambda good: _header_claiming((10 ** 9, *good.shape[1:])), "TiB"),
    ("object-pickle", _object_npy, "expected a real numeric array, found dtype object"),
    ("strings", lambda good: _npy(np.array(["a", "b"])), "expected a real numeric array, found dtype <U1"),
    ("truncated", lambda good: _npy(good)[:-7], "the file holds"),
    ("longer", lambda good: _npy(good) + bytes(9), "the file holds"),
    ("not-npy", lambda good: b"\x93NUMPY\x01\x00garbage", "not a readable .npy array"),
]
BAD_NPY_IDS = [name for name, _, _ in BAD_NPY]


def toy_cache(root: Path) -> Path:
    """A 32-d feature cache of 4 classes, 5 rows each, one shard (`tests.aggregator_toy`)."""
    return write_array_cache(root / "cache", gaussian_classes(0, 4, 5, dim=32), TOY_CLIP, shard_size=100)


def write_classifier(path: Path, rows: np.ndarray, clip: dict, ids=None, names=None, kind: str = "text",
                     space: str = "clip") -> Path:
    rows = np.asarray(rows, dtype=np.float32)
    save_classifier(path, rows, make_sidecar(rows, kind, clip, category_ids=ids, class_names=names, space=space))
    return path


def edit_json(path: Path, edit) -> Path:
    """Rewrite the JSON file at `path` as `edit(its document)`."""
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    return path


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def eval_world(root: Path, tiny_clip_checkpoint: Path) -> dict:
    """Three categories, two images, the tiny CLIP (a copy of the session's `tiny_clip` checkpoint), a text
    classifier made with it, a 32-d toy feature cache and an aggregator for it."""
    w = {"root": root}
    cats = [{"id": i, "name": n, "synonyms": [n], "frequency": "f", "image_count": 3}
            for i, n in ((1, "cone"), (2, "hard hat"), (3, "digger"))]
    images, anns = [], []
    for i in (1, 2):
        Image.new("RGB", (64, 48), (40 * i, 90, 200 - 30 * i)).save(root / f"{i}.jpg")
        images.append({"id": i, "file_name": f"{i}.jpg", "width": 64, "height": 48})
        anns += [{"id": 10 * i + c["id"], "image_id": i, "category_id": c["id"], "bbox": [2.0 * c["id"], 3.0, 40.0, 36.0],
                  "area": 1440.0} for c in cats]
    w["ann"] = root / "ann.json"
    w["ann"].write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    w["clip_config"] = root / "tiny_clip.json"
    shutil.copy(tiny_clip_config_path(), w["clip_config"])
    w["weights"] = root / "tiny_clip.pt"
    shutil.copy(tiny_clip_checkpoint, w["weights"])
    w["clip"] = {"clip_model": str(w["clip_config"]), "pretrained": str(w["weights"]), "embed_dim": 512}
    w["rows"] = np.random.default_rng(0).standard_normal((3, 512)).astype(np.float32)
    w["text"] = write_classifier(root / "text.npy", w["rows"], w["clip"], ids=[1, 2, 3],
                                 names=["cone", "hard hat", "digger"])
    w["cache"] = toy_cache(root)
    torch.manual_seed(0)
    w["aggregator"] = root / "aggregator.pth"
    torch.save({"state_dict": VisualAggregator(dim=32, num_layers=1).state_dict()}, w["aggregator"])
    return w


def eval_argv(w: dict, out: Path, *classifiers, extra=()) -> list[str]:
    """eval_classifiers' command line over the world's boxes (the classifiers' sidecars name the CLIP)."""
    return ["--classifiers", *(str(c) for c in classifiers or [w["text"]]), "--ann", str(w["ann"]),
            "--img-dir", str(w["root"]), "--out-dir", str(out), "--nw", "0", "--device", "cpu", *map(str, extra)]
