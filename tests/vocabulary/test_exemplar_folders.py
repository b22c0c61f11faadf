"""Exemplar sources of a vocabulary: class folders, COCO boxes, the vocabulary's own list, checks and -K."""
import json

import numpy as np
import pytest
from PIL import Image

from mmovod.clip.crops import load_exemplar_crop
from mmovod.readers.exemplar_records import BadImageError, exemplar_crop_box
from mmovod.io.errors import InputError
from mmovod.vocabulary.exemplar_folders import cap_exemplars, collect_exemplars
from mmovod.readers.vocabulary_file import read_vocabulary


def image(path, size=(40, 30), colour=(200, 10, 10)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


@pytest.fixture
def vocab(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("hard hat, safety helmet\ntraffic cone\nExcavator, digger\nwheelbarrow\n")
    return read_vocabulary(path)


def names(records):
    return [[r["file_name"].rsplit("/", 2)[-2] + "/" + r["file_name"].rsplit("/", 1)[-1] for r in rs] for rs in records]


def test_folders_match_names_and_synonyms_and_report_the_rest(tmp_path, vocab):
    root = tmp_path / "photos"
    for rel in ("Hard_Hat/b.jpg", "Hard_Hat/a.PNG", "traffic  Cone/x.jpeg", "digger/1.webp", "boats/z.jpg"):
        image(root / rel)
    (root / "Hard_Hat/notes.txt").write_text("not an image")
    (root / "Hard_Hat/.hidden.jpg").write_text("ignored")
    image(root / "loose.jpg")
    result = collect_exemplars(vocab, root)
    assert names(result.records) == [["Hard_Hat/a.PNG", "Hard_Hat/b.jpg"], ["traffic  Cone/x.jpeg"], ["digger/1.webp"], []]
    assert result.unmatched == ["boats"] and result.ignored_files == 2
    assert result.classes_without() == [3] and result.candidates == [2, 1, 1, 0]
    record = result.records[0][0]
    assert record == {"dataset": "file", "file_name": str(root / "Hard_Hat/a.PNG"), "source": "folder Hard_Hat",
                      "area": 10000.0}
    crop = load_exemplar_crop(record, {}, 0.4)
    assert crop.size == (40, 30)  # whole image


def coco(tmp_path, boxes, extra_anns=()):
    doc = {"images": [{"id": 1, "file_name": "site/1.jpg"}, {"id": 2, "file_name": "site/2.jpg"}],
           "categories": [{"id": 10, "name": "Traffic_Cone"}, {"id": 11, "name": "helmet"}, {"id": 12, "name": "crane"}],
           "annotations": [{"id": 100 + n, "image_id": im, "category_id": cat, "bbox": box}
                           for n, (im, cat, box) in enumerate(boxes)] + list(extra_anns)}
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps(doc))
    return path


def test_coco_boxes_become_cropped_exemplars(tmp_path, vocab):
    image(tmp_path / "photos/site/1.jpg", (100, 80))
    image(tmp_path / "photos/site/2.jpg", (60, 60))
    ann = coco(tmp_path, [(1, 10, [10, 20, 30, 40]), (2, 12, [0, 0, 5, 5]), (2, 10, [0.5, 1, 59.5, 59])],
               [{"id": 7, "image_id": 1, "category_id": 10, "bbox": [0, 0, 10, 10], "iscrowd": 1}])
    vocab_no_synonym = vocab
    result = collect_exemplars(vocab_no_synonym, tmp_path / "photos", ann)
    assert [[(r["bbox"], r["source"], r["area"]) for r in rs] for rs in result.records] == [
        [], [([10.0, 20.0, 30.0, 40.0], "annotation 100", 1200.0), ([0.5, 1.0, 59.5, 59.0], "annotation 102", 3510.5)],
        [], []]
    assert result.unmatched == ["helmet", "crane"]  # helmet is no synonym here; crane is no class
    record = result.records[1][0]
    # LVIS geometry: [10, 20, 31, 41], centre (25.5, 40.5), square side 41 * 1.4 = 57.4, clamped, truncated
    assert exemplar_crop_box(record, 100, 80, 0.4) == (0, 11, 54, 69)


def test_vocabulary_listed_exemplars_resolve_against_its_folder(tmp_path):
    image(tmp_path / "v/imgs/a.jpg", (50, 50))
    (tmp_path / "v/vocab.yaml").write_text("- name: cone\n  exemplars: [imgs/a.jpg, {image: imgs/a.jpg, bbox: [5, 5, 10, 20]}]\n")
    vocab = read_vocabulary(tmp_path / "v/vocab.yaml")
    result = collect_exemplars(vocab)
    assert [(r["file_name"], r.get("bbox"), r["source"]) for r in result.records[0]] == [
        (str(tmp_path / "v/imgs/a.jpg"), None, "vocab.yaml line 1"),
        (str(tmp_path / "v/imgs/a.jpg"), [5.0, 5.0, 10.0, 20.0], "vocab.yaml line 1")]


def test_bad_exemplar_inputs(tmp_path, vocab):
    with pytest.raises(InputError, match="photos: exemplar folder not found"):
        collect_exemplars(vocab, tmp_path / "photos")
    image(tmp_path / "photos/site/1.jpg", (100, 80))
    image(tmp_path / "photos/site/2.jpg", (60, 60))
    outside = coco(tmp_path, [(1, 10, [80, 10, 30, 40])])
    with pytest.raises(InputError, match=r"annotation 100: bbox \[80.0, 10.0, 30.0, 40.0\] lies outside its image .*1.jpg \(100 x 80\)"):
        collect_exemplars(vocab, tmp_path / "photos", outside)
    (tmp_path / "photos/site/2.jpg").write_bytes(b"not a jpeg")
    broken = coco(tmp_path, [(1, 10, [10, 10, 30, 40]), (2, 10, [1, 1, 5, 5])])
    with pytest.raises(BadImageError, match=r"2.jpg: cannot read image: not an image format Pillow knows, a photo of 'traffic cone'$"):
        collect_exemplars(vocab, tmp_path / "photos", broken)
    result = collect_exemplars(vocab, tmp_path / "photos", broken, skip_bad=True)
    assert len(result.records[1]) == 1
    assert result.skipped == [{"class": "traffic cone", "path": str(tmp_path / "photos/site/2.jpg"),
                               "reason": "cannot read image: not an image format Pillow knows"}]
    with pytest.raises(InputError, match="needs --exemplars DIR"):
        collect_exemplars(vocab, None, broken)


def test_k_cap_is_the_lvis_draw(tmp_path):
    boxes = [[0, 0, 10 + i, 5 + 2 * i] for i in range(12)]
    records = [[{"dataset": "file", "file_name": f"{i}.jpg", "bbox": b} for i, b in enumerate(boxes)],
               [{"dataset": "file", "file_name": f"w{i}.jpg"} for i in range(8)],
               [{"dataset": "file", "file_name": "only.jpg"}]]
    capped = cap_exemplars(records, 5, seed=42)
    areas = np.array([b[2] * b[3] for b in boxes], dtype=float)
    expected_boxed = np.random.default_rng(42).choice(12, size=5, p=areas / areas.sum(), replace=False)
    expected_whole = np.random.default_rng(42).choice(8, size=5, p=np.full(8, 1 / 8), replace=False)
    assert [r["file_name"] for r in capped[0]] == [f"{i}.jpg" for i in expected_boxed]
    assert [r["area"] for r in capped[0]] == [float(areas[i]) for i in expected_boxed]
    assert [r["file_name"] for r in capped[1]] == [f"w{i}.jpg" for i in expected_whole]
    assert capped[2] == [{"dataset": "file", "file_name": "only.jpg", "area": 10000.0}]
    assert cap_exemplars(records, None, 0)[0][3]["file_name"] == "3.jpg"
