"""Semantic tier: on the shipped world CLIP, every classifier kind, built by its tool, classifies
held-out crops of the demo world, and a deliberate bug in its pipeline (monkeypatched here, never in
the library) makes it fail.

Held-out data: scenes of the world from seeds the demo and the CLIP training never use; exemplars
come from other scenes than the evaluated crops. A kind passes at >= THRESHOLD top-1 (40 classes:
chance is 2.5%, so the threshold is 24x chance); each mutation must bring it below THRESHOLD.
Not used, because on this CLIP they cost less than that (docs/demo.md has the numbers): fusion
without normalisation, and an aggregator fed L2-normalised embeddings; tests/demo/test_semantic_steps.py
checks such slips one step at a time, where they show.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import mmovod.classifiers.text as text
import mmovod.clip.crops as crops
import mmovod.clip.exemplar_views as exemplar_views
import mmovod.readers.exemplar_records as exemplar_records
import mmovod.evaluation.eval_report as report
from mmovod.demo.dataset import demo_categories, write_demo_lvis, write_world_descriptions, WORLD_DESCRIPTIONS
from mmovod.demo.world_models import world_aggregator_path, world_clip_paths
from mmovod.demo.world import render_scene
from tools import (dump_clip_features, dump_clip_features_lvis_sentences, eval_classifiers,
                   generate_vision_classifier_agg, get_exemplars_tta, norm_feat_sum_norm)

pytestmark = pytest.mark.slow  # each kind built by its tool and evaluated: seconds per test

CLIP = ["--clip_model", str(world_clip_paths()[0]), "--pretrained", str(world_clip_paths()[1]), "--device", "cpu"]
AGGREGATOR = str(world_aggregator_path())
THRESHOLD = 0.60
CHANCE = 1 / 40
EXEMPLARS_PER_CLASS = 2
HELD_OUT_SEED = 90017
EVAL_PER_CLASS = 3
VIEWS = 1


def _exemplar_list(root: Path, rng: np.random.Generator) -> Path:
    """EXEMPLARS_PER_CLASS boxes per demo class from fresh scenes, as sample_exemplars writes them."""
    cats = demo_categories()
    ids = {c["name"]: c["id"] for c in cats}
    chosen: dict[str, list[dict]] = {c["name"]: [] for c in cats}
    (root / "coco/exemplars").mkdir(parents=True)
    n = 0
    while any(len(v) < EXEMPLARS_PER_CLASS for v in chosen.values()):
        wanted = [name for name, v in chosen.items() if len(v) < EXEMPLARS_PER_CLASS]
        image, objects, _ = render_scene(rng, wanted)
        n += 1
        file_name = f"exemplars/{n:06d}.jpg"
        image.save(root / "coco" / file_name, quality=90)
        for name, (x, y, w, h) in objects:
            if len(chosen[name]) < EXEMPLARS_PER_CLASS and w * h > 32 * 32:
                chosen[name].append({"dataset": "lvis", "file_name": file_name, "bbox": [x, y, w, h],
                                     "category_id": ids[name], "synset": name, "area": w * h})
    path = root / "exemplars.json"
    path.write_text(json.dumps([chosen[c["name"]] for c in sorted(cats, key=lambda c: c["id"])]))
    return path


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    (root / "metadata").mkdir()
    rng = np.random.default_rng(HELD_OUT_SEED)
    write_demo_lvis(root, rng)
    write_world_descriptions(root)
    return {"root": root, "ann": root / "lvis/lvis_v1_val.json", "exemplars": _exemplar_list(root, rng),
            "descriptions": root / WORLD_DESCRIPTIONS}


@pytest.fixture(scope="session")
def unbroken(world):
    """Top-1 of every kind built without a bug, from one evaluation run."""
    with pytest.MonkeyPatch.context() as mp:
        _no_plots(mp)
        out = world["root"] / "good"
        paths = {kind: build(world, kind, out) for kind in MUTATIONS}
        return dict(zip(paths, top1(world, list(paths.values()), world["root"] / "eval_good")))


def _no_plots(mp: pytest.MonkeyPatch) -> None:
    """The evaluation's PNG plots are not under test here, and cost seconds."""
    mp.setattr(report, "plot_groups", lambda *args: b"")
    mp.setattr(report, "plot_ap_vs_frequency", lambda *args: b"")


def build(world: dict, kind: str, out: Path) -> Path:
    """Build one classifier kind with its tool into `out` (a folder; kept when already built there);
    returns the .npy path."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{kind}.npy"
    if path.exists():
        return path
    roots = ["--lvis-img-dir", str(world["root"] / "coco")]
    if kind == "name":
        assert dump_clip_features.main(["--ann", str(world["ann"]), "--out_path", str(path), *CLIP]) == 0
    elif kind == "descriptions":
        assert dump_clip_features_lvis_sentences.main([
            "--descriptions-path", str(world["descriptions"]), "--ann-path", str(world["ann"]),
            "--out-path", str(path), *CLIP]) == 0
    elif kind == "average":
        assert get_exemplars_tta.main(["--ann-path", str(world["exemplars"]), "--output-path", str(path),
                                       "--num-augs", str(VIEWS), "--nw", "0", *roots, *CLIP]) == 0
    elif kind == "aggregated":
        assert generate_vision_classifier_agg.main([
            "--exemplar-list", str(world["exemplars"]), "--out-path", str(path), "--num-augs", str(VIEWS), "--tta",
            "--load-path", AGGREGATOR, "--nw", "0", *roots, *CLIP]) == 0
    else:  # fusion-average / fusion-aggregated: descriptions + exemplars
        vision_kind = kind.split("-")[1]
        parts = [build(world, "descriptions", out), build(world, vision_kind, out)]
        assert norm_feat_sum_norm.main(["--feat1-path", str(parts[0]), "--feat2-path", str(parts[1]),
                                        "--out-path", str(path)]) == 0
    return path


def top1(world: dict, classifiers: list[Path], out: Path, cache: Path | None = None) -> list[float]:
    """eval_classifiers' top-1 of each classifier on the held-out val crops (crop embeddings cached in
    `cache`, by default the world's cache shared by every evaluation of unbroken crops)."""
    assert eval_classifiers.main([
        "--classifiers", *map(str, classifiers), "--ann", str(world["ann"]), "--img-dir", str(world["root"] / "coco"),
        "--out-dir", str(out), "--cache-dir", str(cache or world["root"] / "crop_cache"), "--max-per-class", str(EVAL_PER_CLASS),
        "--nw", "0", "--device", "cpu"]) == 0
    results = json.loads((out / "eval_results.json").read_text())["classifiers"]
    return [r["overall"]["top1"] for r in results if r["scored"] == "raw"]


def _boxes_as_corners(original):
    def record_box(record):
        box = original(record)
        if box is None or record.get("dataset") != "lvis":
            return box
        x, y, w, h = box
        return x, y, max(1, w - x), max(1, h - y)  # [x, y, w, h] read as [x1, y1, x2, y2]
    return record_box


def _bgr(original):
    def decode_image(path, reduction=None):
        decoded = original(path, reduction)
        r, g, b = decoded.image.split()
        return type(decoded)(Image.merge("RGB", (b, g, r)), decoded.full_size, decoded.reduction, decoded.origin)
    return decode_image


def _shuffled_rows(original):
    def encode_class_means(*args, **kwargs):
        rows = original(*args, **kwargs)
        return rows[np.random.default_rng(0).permutation(len(rows))]
    return encode_class_means


def _wrong_descriptions(world: dict, out: Path) -> None:
    doc = json.loads(world["descriptions"].read_text())
    keys = list(doc)
    out.write_text(json.dumps({k: doc[keys[(i + 1) % len(keys)]] for i, k in enumerate(keys)}))


MUTATIONS = {
    # kind: the bug, and where it acts (building the classifier, or evaluating it)
    "name": ("rows shuffled against their category ids", "build"),
    "descriptions": ("descriptions keyed to the wrong classes", "build"),
    "average": ("exemplar boxes read as x1,y1,x2,y2", "build"),
    "aggregated": ("exemplar images read as BGR", "build"),
    "fusion-average": ("crops read as BGR", "eval"),
    "fusion-aggregated": ("crops read as BGR", "eval"),
}


def mutate(bug: str, world: dict, monkeypatch, tmp_path: Path) -> dict:
    """Apply `bug`; returns the world to build with (the descriptions bug swaps a file)."""
    if bug.startswith("rows shuffled"):
        monkeypatch.setattr(text, "encode_class_means", _shuffled_rows(text.encode_class_means))
    elif bug.startswith("descriptions"):
        wrong = tmp_path / "wrong_descriptions.json"
        _wrong_descriptions(world, wrong)
        return {**world, "descriptions": wrong}
    elif bug.startswith("exemplar boxes"):
        monkeypatch.setattr(exemplar_records, "record_box", _boxes_as_corners(exemplar_records.record_box))
    elif bug.endswith("read as BGR"):
        monkeypatch.setattr(crops, "decode_image", _bgr(crops.decode_image))
        monkeypatch.setattr(exemplar_views, "decode_image", _bgr(exemplar_views.decode_image))
    else:
        raise ValueError(bug)
    return world


@pytest.mark.parametrize("kind", list(MUTATIONS))
def test_kind_classifies_and_its_bug_does_not(world, unbroken, kind, tmp_path, monkeypatch):
    good = unbroken[kind]
    assert good >= THRESHOLD and good >= 10 * CHANCE, f"{kind}: top-1 {good:.1%}"
    _no_plots(monkeypatch)
    bug, where = MUTATIONS[kind]
    with pytest.MonkeyPatch.context() as mp:
        broken_world = mutate(bug, world, mp, tmp_path) if where == "build" else world
        classifier = build(broken_world, kind, tmp_path / "broken")
    with pytest.MonkeyPatch.context() as mp:
        if where == "eval":
            mutate(bug, world, mp, tmp_path)
        cache = tmp_path / "crop_cache" if where == "eval" else None
        [broken] = top1(world, [classifier], tmp_path / "eval_broken", cache)
    assert broken < THRESHOLD, f"{kind} with {bug}: top-1 {broken:.1%} (unbroken {good:.1%})"
