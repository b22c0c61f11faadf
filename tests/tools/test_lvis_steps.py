import json

import pytest

from mmovod.prep.lvis_annotations import frequency_for
from tests.lvis_fixtures import annotation, category, small_doc, write
from tools import get_lvis_cat_info, remove_lvis_rare


def run_ok(tool, argv):
    assert tool.main(argv) == 0


def test_remove_rare_drops_only_rare_annotations_and_keeps_the_rest(tmp_path, capsys):
    doc = small_doc()
    ann = write(tmp_path / "train.json", doc)
    run_ok(remove_lvis_rare, ["--ann", str(ann)])
    out = json.loads((tmp_path / "train_norare.json").read_text())
    assert [a["id"] for a in out["annotations"]] == [11, 12, 13, 14]
    assert out["annotations"][0] == doc["annotations"][1]
    for key in ("info", "images", "categories", "licenses"):
        assert out[key] == doc[key]
    assert list(out) == list(doc)
    printed = capsys.readouterr().out
    assert "before: 6" in printed and "after:  4" in printed


def test_remove_rare_honours_out(tmp_path):
    ann = write(tmp_path / "train.json", small_doc())
    run_ok(remove_lvis_rare, ["--ann", str(ann), "--out", str(tmp_path / "x.json")])
    assert (tmp_path / "x.json").exists() and not (tmp_path / "train_norare.json").exists()


def test_cat_info_counts_by_hand(tmp_path):
    ann = write(tmp_path / "train.json", small_doc())
    run_ok(get_lvis_cat_info, ["--ann", str(ann)])
    cats = json.loads((tmp_path / "train_cat_info.json").read_text())
    got = {c["id"]: (c["image_count"], c["instance_count"], c["frequency"]) for c in cats}
    assert got == {1: (2, 2, "r"), 2: (2, 2, "c"), 3: (1, 2, "f")}


def test_cat_info_bypass_counts_images_from_pos_category_ids(tmp_path):
    ann = write(tmp_path / "train.json", small_doc())
    run_ok(get_lvis_cat_info, ["--ann", str(ann), "--bypass"])
    cats = json.loads((tmp_path / "train_cat_info.json").read_text())
    assert {c["id"]: (c["image_count"], c["instance_count"]) for c in cats} == {1: (1, 1), 2: (2, 2), 3: (2, 2)}


@pytest.mark.parametrize("count,expected", [(0, "r"), (9, "r"), (10, "c"), (99, "c"), (100, "f"), (5000, "f")])
def test_frequency_thresholds_at_their_boundaries(count, expected):
    assert frequency_for(count, 10, 100) == expected


def test_add_freq_recomputes_with_custom_thresholds_and_prints_totals(tmp_path, capsys):
    cats = [category(1, "f"), category(2, "f"), category(3, "r")]
    anns = [annotation(i, 1000 + i, 1) for i in range(3)]  # cat 1: 3 images
    anns += [annotation(10 + i, 2000 + i, 2) for i in range(2)]  # cat 2: 2 images; cat 3: none
    ann = write(tmp_path / "a.json", {"images": [], "annotations": anns, "categories": cats})
    run_ok(get_lvis_cat_info, ["--ann", str(ann), "--add_freq", "--r_thresh", "2", "--c_thresh", "3"])
    out = json.loads((tmp_path / "a_cat_info.json").read_text())
    assert [c["frequency"] for c in out] == ["f", "c", "r"]
    assert "r=1, c=1, f=1" in capsys.readouterr().out


@pytest.mark.slow
def test_demo_dataset_round_trips_through_both_tools(tmp_path):
    from mmovod.demo.dataset import write_demo_lvis
    import numpy as np

    write_demo_lvis(tmp_path, np.random.default_rng(0))
    ann = tmp_path / "lvis" / "lvis_v1_train.json"
    run_ok(remove_lvis_rare, ["--ann", str(ann)])
    run_ok(get_lvis_cat_info, ["--ann", str(tmp_path / "lvis" / "lvis_v1_train_norare.json")])
    src = json.loads(ann.read_text())
    rare = {c["id"] for c in src["categories"] if c["frequency"] == "r"}
    assert {c["frequency"] for c in src["categories"]} == {"r", "c", "f"}
    info = json.loads((tmp_path / "lvis" / "lvis_v1_train_norare_cat_info.json").read_text())
    for cat in info:
        expected = [a for a in src["annotations"] if a["category_id"] == cat["id"] and cat["id"] not in rare]
        assert cat["instance_count"] == len(expected)
        assert cat["image_count"] == len({a["image_id"] for a in expected})
    # the LVIS API reads our output
    from lvis import LVIS

    api = LVIS(str(tmp_path / "lvis" / "lvis_v1_train_norare.json"))
    assert len(api.get_ann_ids()) == sum(c["instance_count"] for c in info)
