"""CLIP identity by content and paths that survive a change of folder: a classifier made with a relative
--clip_model is evaluated from another folder, with an absolute path to the same files, or with copies of them
elsewhere (another machine); other weights are still refused, and names compare by their open_clip spelling."""
import json
import shutil

import numpy as np
import pytest

from mmovod.classifiers.sidecar import make_sidecar, save_classifier
from mmovod.clip.identity import content_key
from mmovod.features import builder as cache_builder
from tests.eval_fixtures import args
from tools import eval_classifiers as tool


def test_names_compare_by_open_clip_spelling():
    assert content_key("ViT-B/32", None) == content_key("ViT-B-32", "openai") == ("ViT-B-32", "openai")
    assert content_key("ViT-B/32", None) != content_key("ViT-B-32", "laion2b_s34b_b79k")


@pytest.mark.slow
def test_a_relative_clip_path_survives_a_change_of_folder(eval_demo, tmp_path, monkeypatch, capsys, bad_input):
    project = tmp_path / "project"
    shutil.copytree(eval_demo["root"] / "clip", project / "clip")
    (project / "out").mkdir()
    monkeypatch.chdir(project)
    rows = np.random.default_rng(0).standard_normal((len(eval_demo["ids"]), 512)).astype(np.float32)
    clip = {"clip_model": "clip/tiny_clip.json", "pretrained": "clip/tiny_clip.pt", "embed_dim": 512}
    save_classifier("out/text.npy", rows, make_sidecar(rows, "text", clip, category_ids=eval_demo["ids"]))
    side = json.loads((project / "out/text.npy.json").read_text())
    assert side["clip_model"] == "clip/tiny_clip.json"  # as typed; where to find it again is recorded beside
    assert side["details"]["clip_files"]["clip_model"]["relative_to_sidecar"] == "../clip/tiny_clip.json"

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    classifier = project / "out/text.npy"
    cache = ("--cache-dir", str(tmp_path / "crop_cache"))  # one crop cache for all three runs
    assert tool.main(args(eval_demo, elsewhere / "e1", (classifier,), *cache)) == 0  # found relative to the sidecar
    encoded = []
    real = cache_builder.encode_items
    monkeypatch.setattr(cache_builder, "encode_items", lambda *a, **k: encoded.append(a[1]) or real(*a, **k))
    assert tool.main(args(eval_demo, elsewhere / "e2", (classifier,), "--clip_model", str(project / "clip/tiny_clip.json"),
                          "--pretrained", str(project / "clip/tiny_clip.pt"), *cache)) == 0  # the same CLIP
    moved = tmp_path / "moved"  # another machine: the same files somewhere else, the project's copies gone
    shutil.copytree(project / "clip", moved)
    shutil.rmtree(project / "clip")
    assert tool.main(args(eval_demo, elsewhere / "e3", (classifier,), "--clip_model", str(moved / "tiny_clip.json"),
                          "--pretrained", str(moved / "tiny_clip.pt"), *cache)) == 0
    assert encoded == []  # the crop cache is keyed by the CLIP's content, not the path that named it
    assert len(list((tmp_path / "crop_cache").iterdir())) == 1
    capsys.readouterr()
    other = moved / "other.pt"
    other.write_bytes((moved / "tiny_clip.pt").read_bytes() + b"\0")  # different content
    bad_input(tool.main, args(eval_demo, elsewhere / "e4", (classifier,), "--clip_model", str(moved / "tiny_clip.json"),
                              "--pretrained", str(other)), elsewhere / "e4", "but --clip_model/--pretrained say")
