"""tools/collate_exemplar_dict.py: sources, order, thresholds at their boundary, VG below 40, cousins below 10."""
import json
from pathlib import Path

import pytest

from tools.collate_exemplar_dict import main

CATS = [
    {"id": 1, "name": "aerosol_can", "synset": "aerosol.n.02"},
    {"id": 2, "name": "air_conditioner", "synset": "air_conditioner.n.01"},
    {"id": 10, "name": "anklet", "synset": "anklet.n.03"},  # cousin: anklet.n.02 (n02713218)
    {"id": 71, "name": "beach_ball", "synset": "beach_ball.n.01"},  # cousin: volleyball.n.02 (n04540053)
    {"id": 1019, "name": "stop_sign", "synset": "stop_sign.n.01"},  # VG stand-in street_sign.n.01
]
AEROSOL, AIRCON, ANKLET2, VOLLEYBALL = "n02682922", "n02686379", "n02713218", "n04540053"


def lvis_ann(ann_id, cat_id, image_id, area, bbox=(1.0, 2.0, 40.0, 30.0)):
    return {"id": ann_id, "image_id": image_id, "category_id": cat_id, "bbox": list(bbox), "area": area,
            "segmentation": [[1.5, 2.5, 3.5, 4.5, 5.5, 6.5]]}


def vg_obj(obj_id, synsets, w, h):
    return {"object_id": obj_id, "x": 3, "y": 4, "w": w, "h": h, "names": ["thing"], "synsets": synsets}


def imagenet_files(root: Path, split: str, wnid: str, n: int) -> list[str]:
    folder = root / "imagenet21k_P" / split / wnid
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"{wnid}_{i}.JPEG" for i in range(n)]
    for name in names:
        (folder / name).write_bytes(b"")  # collation lists files, it never opens them
    return sorted(names)


@pytest.fixture
def data(tmp_path):
    lvis = {
        "images": [{"id": 7, "coco_url": "http://images.cocodataset.org/train2017/000000000007.jpg"},
                   {"id": 8, "coco_url": "http://images.cocodataset.org/val2017/000000000008.jpg"}],
        "categories": [dict(c) for c in CATS],
        "annotations": [
            lvis_ann(101, 1, 7, 1024.01),  # just over 32*32: kept
            lvis_ann(102, 1, 8, 1024.0),  # exactly 32*32: dropped (lvis-api's area range is strict)
            lvis_ann(103, 2, 8, 5000.0),
        ],
    }
    (tmp_path / "lvis").mkdir()
    (tmp_path / "lvis" / "lvis_v1_train.json").write_text(json.dumps(lvis))
    imagenet = tmp_path / "imagenet"
    files = {
        "aerosol": imagenet_files(imagenet, "train", AEROSOL, 39),  # 1 + 39 = 40: no Visual Genome
        "aircon_small": imagenet_files(imagenet, "imagenet21k_small_classes", AIRCON, 30),
        "aircon_train": imagenet_files(imagenet, "train", AIRCON, 7),  # 1 + 37 = 38: takes VG
        "aircon_val": imagenet_files(imagenet, "val", AIRCON, 5),  # val is never an exemplar source
        "anklet2": imagenet_files(imagenet, "train", ANKLET2, 1),
        "volleyball": imagenet_files(imagenet, "train", VOLLEYBALL, 2),
    }
    objects = [
        {"image_id": 1, "objects": [
            vg_obj(1, ["aerosol.n.02"], 50, 50),  # aerosol has 40: not used
            vg_obj(2, ["air_conditioner.n.01"], 32, 32),  # exactly 32*32: kept
            vg_obj(3, ["air_conditioner.n.01"], 31, 33),  # 1023: dropped
            vg_obj(4, ["air_conditioner.n.01", "machine.n.01"], 50, 50),  # two synsets: dropped
            vg_obj(5, ["street_sign.n.01"], 40, 40),
        ]},
        {"image_id": 2, "objects": [vg_obj(10 + i, ["anklet.n.03"], 40, 40) for i in range(9)]
                                   + [vg_obj(20 + i, ["beach_ball.n.01"], 40, 40) for i in range(10)]
                                   + [vg_obj(30, ["anklet.n.02"], 40, 40), vg_obj(31, ["anklet.n.02"], 10, 10),
                                      vg_obj(32, ["volleyball.n.02"], 40, 40)]},
    ]
    vg = tmp_path / "VisualGenome"
    vg.mkdir()
    (vg / "objects.json").write_text(json.dumps(objects))
    (vg / "image_data.json").write_text(json.dumps([
        {"image_id": 1, "url": "https://cs.stanford.edu/people/rak248/VG_100K/1.jpg", "width": 800, "height": 600},
        {"image_id": 2, "url": "https://cs.stanford.edu/people/rak248/VG_100K_2/2.jpg", "width": 800, "height": 600},
    ]))
    (tmp_path / "out").mkdir()
    return tmp_path, lvis, objects, files


def argv(tmp, *extra, imagenet="imagenet", out="out/ex.json"):
    return ["--lvis-dir", str(tmp / "lvis"), "--imagenet-dir", str(tmp / imagenet),
            "--visual-genome-dir", str(tmp / "VisualGenome"), "--output-path", str(tmp / out), *extra]


def test_exact_exemplar_dict(data, capsys):
    tmp, lvis, objects, files = data
    assert main(argv(tmp)) == 0
    got = json.loads((tmp / "out" / "ex.json").read_text())

    def inet(split, wnid, names, cat_id, synset):
        return [{"file_name": f"imagenet21k_P/{split}/{wnid}/{n}", "category_id": cat_id, "dataset": "imagenet21k",
                 "synset": synset} for n in names]

    def vg(image_id, obj, cat_id, synset):
        folder = "VG_100K" if image_id == 1 else "VG_100K_2"
        return dict({"image_id": image_id, "dataset": "visual_genome", "file_name": f"{folder}/{image_id}.jpg",
                     "category_id": cat_id, "synset": synset}, **obj)

    def lv(ann, split, synset):
        return dict(ann, dataset="lvis", file_name=f"{split}/{ann['image_id']:012d}.jpg", synset=synset)

    img1, img2 = objects[0]["objects"], objects[1]["objects"]
    expected = {
        "aerosol.n.02": [lv(lvis["annotations"][0], "train2017", "aerosol.n.02")]
                        + inet("train", AEROSOL, files["aerosol"], 1, "aerosol.n.02"),
        "air_conditioner.n.01": [lv(lvis["annotations"][2], "val2017", "air_conditioner.n.01")]
                                + inet("train", AIRCON, files["aircon_train"], 2, "air_conditioner.n.01")
                                + inet("imagenet21k_small_classes", AIRCON, files["aircon_small"], 2, "air_conditioner.n.01")
                                + [vg(1, img1[1], 2, "air_conditioner.n.01")],
        # 9 direct: under 10, so the cousin's ImageNet images and then its VG objects follow
        "anklet.n.03": [vg(2, o, 10, "anklet.n.03") for o in img2[:9]]
                       + inet("train", ANKLET2, files["anklet2"], 10, "anklet.n.02")
                       + [vg(2, img2[19], 10, "anklet.n.02")],
        # exactly 10: no cousins
        "beach_ball.n.01": [vg(2, o, 71, "beach_ball.n.01") for o in img2[9:19]],
        "stop_sign.n.01": [vg(1, img1[4], 1019, "stop_sign.n.01")],
    }
    assert list(got) == list(expected)
    for key in expected:
        assert got[key] == expected[key], key
    out = capsys.readouterr()
    assert "matched directly in ImageNet: 2 (paper: 997)" in out.out
    assert "under 10 before cousins:      2 (paper: 43)" in out.out
    assert "1 class still has fewer than 10 exemplars: stop_sign.n.01" in out.err


def test_imagenet_dir_may_be_the_tree_itself(data):
    tmp = data[0]
    assert main(argv(tmp, out="out/a.json")) == 0
    assert main(argv(tmp, imagenet="imagenet/imagenet21k_P", out="out/b.json")) == 0
    assert (tmp / "out" / "a.json").read_bytes() == (tmp / "out" / "b.json").read_bytes()


def test_missing_sources_warn(data, capsys):
    tmp = data[0]
    argv_ = argv(tmp)
    argv_[3] = str(tmp / "no_imagenet")
    argv_[5] = str(tmp / "no_vg")
    assert main(argv_) == 0
    got = json.loads((tmp / "out" / "ex.json").read_text())
    assert [len(v) for v in got.values()] == [1, 1, 0, 0, 0]
    err = capsys.readouterr().err
    assert "no_imagenet: not found" in err and "no_vg: not found" in err


def test_strict_fails_on_classes_under_10(data, bad_input):
    tmp = data[0]
    bad_input(main, argv(tmp, "--strict"), tmp / "out" / "ex.json", "1 class has fewer than 10 exemplars")


@pytest.mark.parametrize("case,needle", [
    ("no_lvis", "lvis_v1_train.json: annotation file not found"),
    ("no_objects", "objects.json: Visual Genome file not found"),
    ("no_wh", "image entry #1: Object missing required field `w`"),
    ("no_vg_image", "no entry for image_id 2"),
    ("unknown_synset", "'nosuch.n.01' is not in mmovod's synset table"),
    ("bad_category", "annotation #0 has category_id 99"),
    ("no_out_dir", "output folder"),
])
def test_bad_inputs_exit_2_without_output(data, bad_input, case, needle):
    tmp, lvis, objects, _ = data
    out = tmp / "out" / "ex.json"
    args = argv(tmp)
    vg = tmp / "VisualGenome"
    if case == "no_lvis":
        (tmp / "lvis" / "lvis_v1_train.json").unlink()
    elif case == "no_objects":
        (vg / "objects.json").unlink()
    elif case == "no_wh":
        del objects[1]["objects"][0]["w"]
        (vg / "objects.json").write_text(json.dumps(objects))
    elif case == "no_vg_image":
        (vg / "image_data.json").write_text(json.dumps(json.loads((vg / "image_data.json").read_text())[:1]))
    elif case in ("unknown_synset", "bad_category"):
        if case == "unknown_synset":
            lvis["categories"][0]["synset"] = "nosuch.n.01"
        else:
            lvis["annotations"][0]["category_id"] = 99
        (tmp / "lvis" / "lvis_v1_train.json").write_text(json.dumps(lvis))
    elif case == "no_out_dir":
        out = tmp / "nodir" / "ex.json"
        args[7] = str(out)
    bad_input(main, args, out, needle)
