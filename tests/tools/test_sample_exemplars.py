"""tools/sample_exemplars.py against an independent re-computation of the authors' procedure."""
import copy
import json

import numpy as np
import pytest

from bench.naive_sample_exemplars import authors_sample
from tools.sample_exemplars import main

CATS = [{"id": 3, "synset": "c.n.01"}, {"id": 1, "synset": "a.n.01"}, {"id": 2, "synset": "b.n.01"}]


def make_dict(rng):
    """A varied exemplar dict: LVIS, ImageNet and VG records with assorted areas."""
    out = {}
    for cat in CATS:
        records = []
        for i in range(int(rng.integers(6, 15))):
            kind = i % 3
            if kind == 0:
                records.append({"id": i, "bbox": [1.0, 2.0, float(rng.integers(1, 90)), float(rng.integers(1, 90))],
                                "area": 1.0, "category_id": cat["id"], "dataset": "lvis", "file_name": f"train2017/{i}.jpg",
                                "synset": cat["synset"]})
            elif kind == 1:
                records.append({"file_name": f"imagenet21k_P/train/n1/n1_{i}.JPEG", "category_id": cat["id"],
                                "dataset": "imagenet21k", "synset": cat["synset"]})
            else:
                records.append({"image_id": i, "dataset": "visual_genome", "file_name": f"VG_100K/{i}.jpg",
                                "category_id": cat["id"], "synset": cat["synset"], "object_id": i, "x": 0, "y": 0,
                                "w": int(rng.integers(32, 200)), "h": int(rng.integers(32, 200))})
        out[cat["synset"]] = records
    out["unused.n.01"] = []
    return out


def reference(exemplars, k, seed):
    """The procedure as the authors wrote it (bench/naive_sample_exemplars.py), on a copy of the records."""
    return authors_sample(CATS, copy.deepcopy(exemplars), k, seed)


@pytest.fixture
def files(tmp_path):
    exemplars = make_dict(np.random.default_rng(7))
    (tmp_path / "ex.json").write_text(json.dumps(exemplars))
    (tmp_path / "val.json").write_text(json.dumps({"categories": CATS}))
    return tmp_path, exemplars


def argv(tmp, *extra, out="out.json"):
    return ["--lvis-ann-path", str(tmp / "val.json"), "--exemplar-dict-path", str(tmp / "ex.json"),
            "--out-path", str(tmp / out), *extra]


@pytest.mark.parametrize("k,seed", [(5, 42), (1, 0), (6, 123)])
def test_matches_the_reference_procedure(files, k, seed):
    tmp, exemplars = files
    assert main(argv(tmp, "-K", str(k), "--seed", str(seed))) == 0
    got = json.loads((tmp / "out.json").read_text())
    assert got == reference(exemplars, k, seed)
    assert [len(c) for c in got] == [k, k, k]


def test_fewer_than_k_is_an_error_or_takes_all(files, bad_input):
    tmp, exemplars = files
    k = min(len(exemplars[c["synset"]]) for c in CATS) + 1
    bad_input(main, argv(tmp, "-K", str(k)), tmp / "out.json", f"fewer than K={k}")
    exemplars["a.n.01"] = exemplars["a.n.01"][:2]
    (tmp / "ex.json").write_text(json.dumps(exemplars))
    bad_input(main, argv(tmp, "-K", "5"), tmp / "out.json", "1 class has fewer than K=5 exemplars: a.n.01 (2)")
    assert main(argv(tmp, "-K", "5", "--allow-fewer")) == 0
    got = json.loads((tmp / "out.json").read_text())
    assert [r["file_name"] for r in got[0]] == [r["file_name"] for r in exemplars["a.n.01"]]
    assert [len(c) for c in got] == [2, 5, 5]


@pytest.mark.parametrize("case,needle", [
    ("k0", "-K must be positive"),
    ("missing_class", "no exemplars for 1 LVIS classes (b.n.01)"),
    ("no_bbox", "exemplar #0 of a.n.01 (dataset 'lvis') has no usable bbox"),
    ("no_dict", "exemplar dict not found"),
    ("not_json", "not valid JSON"),
])
def test_bad_inputs_exit_2_without_output(files, bad_input, case, needle):
    tmp, exemplars = files
    extra = ["-K", "0"] if case == "k0" else []
    if case == "missing_class":
        del exemplars["b.n.01"]
    elif case == "no_bbox":
        del exemplars["a.n.01"][0]["bbox"]
    if case == "no_dict":
        (tmp / "ex.json").unlink()
    elif case == "not_json":
        (tmp / "ex.json").write_text("{oops")
    else:
        (tmp / "ex.json").write_text(json.dumps(exemplars))
    bad_input(main, argv(tmp, *extra), tmp / "out.json", needle)
