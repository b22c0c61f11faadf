"""tools/create_imagenetlvis_json.py and the header-size reader behind it."""
import json
from pathlib import Path

import pytest
from PIL import Image

from mmovod.readers.image_header import header_size, header_sizes
from tools.create_imagenetlvis_json import main

CATS = [  # real LVIS v1 entries (trimmed); wnids from the 997 ImageNet-LVIS list, stop_sign has none
    {"id": 1, "name": "aerosol_can", "synset": "aerosol.n.02", "frequency": "c"},
    {"id": 2, "name": "air_conditioner", "synset": "air_conditioner.n.01", "frequency": "f"},
    {"id": 3, "name": "airplane", "synset": "airplane.n.01", "frequency": "f"},
    {"id": 1019, "name": "stop_sign", "synset": "stop_sign.n.01", "frequency": "f"},
]
AEROSOL, AIRCON, AIRPLANE, NON_LVIS = "n02682922", "n02686379", "n02691156", "n00005787"


def jpeg(path: Path, size=(40, 30), orientation=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    Image.new("RGB", size, (200, 10, 10)).save(path, exif=exif.tobytes())


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "imagenet" / "imagenet21k_P"
    jpeg(root / "train" / AEROSOL / f"{AEROSOL}_2.JPEG", (50, 20))
    jpeg(root / "train" / AEROSOL / f"{AEROSOL}_10.JPEG", (40, 30), orientation=6)  # shown as 30 x 40
    jpeg(root / "val" / AEROSOL / f"{AEROSOL}_1.JPEG", (60, 44), orientation=3)  # 180 degrees: no swap
    (root / "val" / AEROSOL / f"{AEROSOL}_5.JPEG").write_bytes(b"not a jpeg at all")
    (root / "val" / AEROSOL / "notes.txt").write_text("not an image")
    jpeg(root / "imagenet21k_small_classes" / AIRCON / f"{AIRCON}_7.JPEG", (33, 31))
    jpeg(root / "train" / NON_LVIS / f"{NON_LVIS}_1.JPEG")
    (tmp_path / "lvis").mkdir()
    (tmp_path / "lvis" / "val.json").write_text(json.dumps({"categories": CATS[::-1], "images": [], "annotations": []}))
    (tmp_path / "out").mkdir()
    return tmp_path


def args(tmp, out="out/info.json", *extra):
    return ["--imagenet-path", str(tmp / "imagenet" / "imagenet21k_P"), "--lvis-meta-path", str(tmp / "lvis" / "val.json"),
            "--out-path", str(tmp / out), "--workers", "1", *extra]


def test_exact_output_and_skip_report(tree, capsys):
    assert main(args(tree)) == 0
    captured = capsys.readouterr()
    assert f"skipped 1 unreadable images: val/{AEROSOL}/{AEROSOL}_5.JPEG" in captured.err
    doc = json.loads((tree / "out" / "info.json").read_text())
    # id order: category id, then split (train, val, small classes), then file name (as strings)
    assert doc["images"] == [
        {"id": 1, "file_name": f"train/{AEROSOL}/{AEROSOL}_10.JPEG", "pos_category_ids": [1], "width": 30, "height": 40},
        {"id": 2, "file_name": f"train/{AEROSOL}/{AEROSOL}_2.JPEG", "pos_category_ids": [1], "width": 50, "height": 20},
        {"id": 3, "file_name": f"val/{AEROSOL}/{AEROSOL}_1.JPEG", "pos_category_ids": [1], "width": 60, "height": 44},
        {"id": 4, "file_name": f"imagenet21k_small_classes/{AIRCON}/{AIRCON}_7.JPEG", "pos_category_ids": [2],
         "width": 33, "height": 31},
    ]
    assert doc["annotations"] == []
    assert doc["categories"] == [dict(c, image_count=n) for c, n in zip(CATS, [3, 1, 0, 0])]


@pytest.mark.slow
def test_two_runs_are_byte_identical_and_load_with_lvis(tree):
    assert main(args(tree, "out/a.json")) == 0
    assert main(args(tree, "out/b.json", "--workers", "2")) == 0
    a, b = (tree / "out" / "a.json").read_bytes(), (tree / "out" / "b.json").read_bytes()
    assert a == b
    from lvis import LVIS
    api = LVIS(str(tree / "out" / "a.json"))
    assert sorted(api.get_img_ids()) == [1, 2, 3, 4]
    assert api.load_cats([2])[0]["image_count"] == 1


def test_imagenet_root_may_be_the_parent_folder(tree):
    argv = args(tree)
    argv[1] = str(tree / "imagenet")
    assert main(argv) == 0
    assert len(json.loads((tree / "out" / "info.json").read_text())["images"]) == 4


def test_parallel_header_reads_match_sequential(tree):
    paths = sorted(str(p) for p in (tree / "imagenet").rglob("*.JPEG")) * 3
    assert list(header_sizes(paths, workers=2, chunksize=1)) == [header_size(p) for p in paths]
    assert header_size(str(tree / "missing.JPEG")) is None


def test_strict_makes_unreadable_an_error(tree, bad_input):
    bad_input(main, args(tree, "out/info.json", "--strict"), tree / "out" / "info.json", "1 unreadable images")


@pytest.mark.parametrize("case,needle", [
    ("no_tree", "ImageNet-21K-P folder not found"),
    ("empty_tree", "no train/"),
    ("no_meta", "annotation file not found"),
    ("no_out_dir", "output folder"),
    ("unknown_synset", "'nosuch.n.01' is not in mmovod's synset table"),
    ("workers", "--workers must be at least 1"),
])
def test_bad_inputs_exit_2_without_output(tree, bad_input, case, needle):
    argv = args(tree)
    out = tree / "out" / "info.json"
    if case == "no_tree":
        argv[1] = str(tree / "nothing")
    elif case == "empty_tree":
        (tree / "empty").mkdir()
        argv[1] = str(tree / "empty")
    elif case == "no_meta":
        argv[3] = str(tree / "lvis" / "missing.json")
    elif case == "no_out_dir":
        out = tree / "nodir" / "info.json"
        argv[5] = str(out)
    elif case == "unknown_synset":
        (tree / "lvis" / "val.json").write_text(json.dumps({"categories": [{"id": 5, "synset": "nosuch.n.01"}]}))
    elif case == "workers":
        argv[7] = "0"
    bad_input(main, argv, out, needle)
