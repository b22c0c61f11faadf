"""The demo tree's ImageNet and Visual Genome parts, and the three exemplar steps run on it as the Makefile does."""
import json

import pytest

from mmovod.demo.dataset import make_demo_dataset
from tools import collate_exemplar_dict, create_imagenetlvis_json, sample_exemplars


@pytest.mark.slow
def test_demo_runs_the_exemplar_steps(tmp_path, capsys):
    demo = tmp_path / "demo"
    counts = make_demo_dataset(demo)
    assert counts["imagenet_images"] == 61 and counts["visual_genome_images"] == 160
    (demo / "imagenet" / "annotations").mkdir()
    info = demo / "imagenet" / "annotations" / "imagenet_lvis_image_info.json"
    assert create_imagenetlvis_json.main([
        "--imagenet-path", str(demo / "imagenet" / "imagenet21k_P"), "--lvis-meta-path", str(demo / "lvis" / "lvis_v1_val.json"),
        "--out-path", str(info)]) == 0
    images = json.loads(info.read_text())["images"]
    assert not any("n00005787" in img["file_name"] for img in images)  # not an LVIS wnid
    rotated = [img for img in images if img["file_name"] == "train/n02682922/n02682922_1.JPEG"]
    assert [(r["width"], r["height"]) for r in rotated] == [(30, 40)]
    ex = demo / "metadata" / "exemplar_dict.json"
    assert collate_exemplar_dict.main([
        "--lvis-dir", str(demo / "lvis"), "--imagenet-dir", str(demo / "imagenet"),
        "--visual-genome-dir", str(demo / "VisualGenome"), "--output-path", str(ex), "--strict"]) == 0
    exemplars = json.loads(ex.read_text())
    assert all(len(v) >= 10 for v in exemplars.values())
    assert not any(r["dataset"] == "visual_genome" for r in exemplars["motor_scooter.n.01"])
    assert {r["synset"] for r in exemplars["beach_ball.n.01"]} >= {"volleyball.n.02"}
    out = demo / "metadata" / "lvis_image_exemplar_dict_K-005_own.json"
    assert sample_exemplars.main([
        "--lvis-ann-path", str(demo / "lvis" / "lvis_v1_val.json"), "--exemplar-dict-path", str(ex), "-K", "5",
        "--out-path", str(out)]) == 0
    chosen = json.loads(out.read_text())
    assert len(chosen) == 40 and all(len(c) == 5 for c in chosen)
    for record in (r for c in chosen for r in c):
        assert {"dataset", "file_name", "category_id", "synset", "area"} <= set(record)
        assert (demo / {"lvis": "coco", "imagenet21k": "imagenet", "visual_genome": "VisualGenome"}[record["dataset"]]
                / record["file_name"]).is_file()
