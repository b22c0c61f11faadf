import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mmovod.demo.dataset import DEMO_MARK, demo_categories, write_demo_lvis

ROOT = Path(__file__).resolve().parents[2]


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_demo_lvis_is_deterministic_and_consistent(tmp_path):
    write_demo_lvis(tmp_path / "a", np.random.default_rng(0))
    write_demo_lvis(tmp_path / "b", np.random.default_rng(0))
    assert digest(tmp_path / "a") == digest(tmp_path / "b")

    from lvis import LVIS
    from PIL import Image

    api = LVIS(str(tmp_path / "a" / "lvis" / "lvis_v1_val.json"))
    for img in api.load_imgs(api.get_img_ids()):
        split, name = img["coco_url"].split("/")[-2:]
        with Image.open(tmp_path / "a" / "coco" / split / name) as im:
            assert im.size == (img["width"], img["height"])
    for ann in api.load_anns(api.get_ann_ids()):
        x, y, w, h = ann["bbox"]
        img = api.imgs[ann["image_id"]]
        assert 0 <= x and 0 <= y and x + w <= img["width"] and y + h <= img["height"]


def test_demo_categories_are_real_lvis_entries_of_every_frequency():
    import json

    real = {c["id"]: c for c in json.loads((ROOT / "tests/data/lvis_v1_categories.json").read_text())}
    cats = demo_categories()
    assert all(real[c["id"]] == c for c in cats)
    assert {c["frequency"] for c in cats} == {"r", "c", "f"}


def test_tools_run_as_scripts_from_the_repo_root():
    out = subprocess.run([sys.executable, "tools/remove_lvis_rare.py", "--help"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert "--ann" in out and "Example" in out


@pytest.mark.slow
@pytest.mark.parametrize("earlier", [False, True], ids=["new", "over-an-earlier-tree"])
def test_an_interrupted_demo_leaves_the_output_folder_as_it_was(tmp_path, monkeypatch, capsys, earlier):
    from mmovod.demo import dataset
    from tools import make_demo_data

    out = tmp_path / "datasets" / "demo"
    if earlier:
        (out / "lvis").mkdir(parents=True)
        (out / "lvis/lvis_v1_val.json").write_text("earlier")
        (out / DEMO_MARK).write_text("")

    def ctrl_c(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr(dataset, "write_demo_imagenet", ctrl_c)  # the second part: the LVIS part is written by then
    assert make_demo_data.main(["--out", str(out)]) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == "make_demo_data.py: interrupted; no output was written"
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert left == (["datasets", "datasets/demo", f"datasets/demo/{DEMO_MARK}", "datasets/demo/lvis",
                     "datasets/demo/lvis/lvis_v1_val.json"] if earlier else ["datasets"])
    if earlier:
        assert (out / "lvis/lvis_v1_val.json").read_text() == "earlier"


def test_a_folder_with_other_files_is_refused_before_any_work(tmp_path, bad_input, monkeypatch):
    """The demo replaces coco/, lvis/, metadata/ whole: in --out-dir datasets they would be the user's own data."""
    from mmovod.demo import dataset
    from tools import make_demo_data

    out = tmp_path / "datasets"
    (out / "coco").mkdir(parents=True)
    (out / "coco/mine.jpg").write_bytes(b"the user's photo")

    def no_work(*args):
        raise AssertionError("the demo was drawn")
    monkeypatch.setattr(dataset, "write_demo_lvis", no_work)
    bad_input(make_demo_data.main, ["--out-dir", str(out)], out / "coco/mine.jpg", "holds coco and is no earlier demo",
              existing=b"the user's photo")


@pytest.mark.slow
def test_a_rerun_over_an_earlier_demo_replaces_it_and_keeps_files_of_other_names(tmp_path, capsys):
    from tools import make_demo_data

    out = tmp_path / "demo"
    assert make_demo_data.main(["--out-dir", str(out)]) == 0
    first = digest(out)
    (out / "lvis/lvis_v1_val.json").write_text("changed")
    (out / "notes.txt").write_text("mine")
    assert make_demo_data.main(["--out-dir", str(out)]) == 0
    assert digest(out) == {**first, "notes.txt": hashlib.sha256(b"mine").hexdigest()}
