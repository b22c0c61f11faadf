"""Evaluating a classifier of your own classes on any COCO-format file: rows matched by name and synonym when ids
do not line up (the unmatched named), no r/c/f needed, all-zero rows left out with one line."""
import json

import numpy as np
import pytest

from mmovod.classifiers.sidecar import make_sidecar, save_classifier
from mmovod.evaluation import class_matching
from mmovod.evaluation.class_matching import match_rows
from mmovod.evaluation.crops_from_annotations import Category
from mmovod.io.errors import InputError
from tests.eval_fixtures import args
from tools import eval_classifiers as tool

CATS = [Category(3, "hard_hat", synonyms=("hard_hat", "safety helmet")), Category(7, "traffic cone"),
        Category(9, "excavator")]


def test_ids_that_line_up_are_used():
    assert match_rows(2, CATS, "x", ids=[7, 3], names=["Traffic Cone", "hard hat"]).category_ids == [7, 3]
    assert match_rows(3, CATS, "x").by == "order"


def test_names_and_synonyms_when_ids_do_not_line_up():
    match = match_rows(4, CATS, "x", ids=[1, 2, 3, 4], names=["excavator", "safety helmet", "boat", "traffic_cone"],
                       synonyms=[[], [], [], []])
    assert match.by == "name" and match.category_ids[:2] == [9, 3] and match.category_ids[3] == 7
    assert match.category_ids[2] not in (3, 7, 9) and match.unmatched_rows == ["boat"]
    assert match.renamed == [("safety helmet", "hard_hat")]
    assert match.describe(4) == ("3 of 4 rows matched to categories by name (by synonym: safety helmet = hard_hat); "
                                 "no category for: boat")
    by_own_synonym = match_rows(1, CATS, "x", names=["digger"], synonyms=[["digger", "excavator"]])
    assert by_own_synonym.category_ids == [9]
    with pytest.raises(InputError, match="none of its 2 classes \\(boat, kite\\) is a category of --ann"):
        match_rows(2, CATS, "x", names=["boat", "kite"])


def own_classifier(tmp_path, eval_demo, names, rows, ids=None):
    path = tmp_path / f"own{len(list(tmp_path.glob('*.npy')))}.npy"
    rows = np.asarray(rows, dtype=np.float32)
    save_classifier(path, rows, make_sidecar(rows, "multi-modal", eval_demo["clip"], class_names=names, category_ids=ids))
    return path


@pytest.mark.slow
def test_own_classes_on_a_coco_file_without_frequencies(eval_demo, tmp_path, capsys, monkeypatch):
    """Rows named like the file's categories, in another order, with ids of another numbering, one class the file
    lacks and one zero row: the same numbers as the file's own ids give, and the lines that say so."""
    doc = json.loads((eval_demo["root"] / "lvis/lvis_v1_val.json").read_text())
    cats = sorted(doc["categories"], key=lambda c: c["id"])
    for c in doc["categories"]:  # a plain COCO file: no frequencies, no image counts
        c.pop("frequency", None)
        c.pop("image_count", None)
    coco = tmp_path / "coco.json"
    coco.write_text(json.dumps(doc))
    rng = np.random.default_rng(3)
    rows = rng.standard_normal((len(cats), 512))
    rows[4] = 0  # a class without exemplars
    order = rng.permutation(len(cats))
    names = [cats[i]["name"].replace("_", " ").upper() for i in order] + ["my own class"]
    mine = own_classifier(tmp_path, eval_demo, names, np.vstack([rows[order], rng.standard_normal((1, 512))]),
                          ids=list(range(1000, 1000 + len(names))))
    keep = np.abs(rows).sum(axis=1) > 0
    reference = own_classifier(tmp_path, eval_demo, None, rows[keep] / np.linalg.norm(rows[keep], axis=1, keepdims=True),
                               ids=[c["id"] for c, k in zip(cats, keep) if k])
    argv = args(eval_demo, tmp_path / "e", (mine, reference))
    argv[argv.index("--ann") + 1] = str(coco)
    assert tool.main(argv) == 0
    printed = capsys.readouterr().out
    got = json.loads((tmp_path / "e/eval_results.json").read_text())["classifiers"]
    assert "by_frequency" not in got[0] and "mAP_r" not in printed
    # per-class AP ranks the crops by one class's score: the same whichever ids or order the rows had
    ap = {c["name"]: c["ap"] for c in got[1]["per_class"]}
    assert {c["name"]: c["ap"] for c in got[0]["per_class"] if c["name"] in ap} == pytest.approx(ap, abs=1e-6)
    assert got[0]["overall"]["map"] == pytest.approx(got[1]["overall"]["map"], abs=1e-6)
    assert got[0]["overall"]["crops"] == got[1]["overall"]["crops"]
    assert got[0]["overall"]["top1"] <= got[1]["overall"]["top1"]  # the extra row competes, as a detector's would
    zero_name = names[int(np.flatnonzero(order == 4)[0])]
    assert f"left out 1 class whose row is all zeros (no exemplars): {cats[4]['name']}" in printed
    assert f"{len(cats)} of {len(names)} rows matched to categories by name; no category for: my own class" in printed
    assert zero_name == cats[4]["name"].replace("_", " ").upper()
    # break the matching (rows given to the categories in file order): the numbers must change
    real = class_matching._by_name
    monkeypatch.setattr(class_matching, "_by_name", lambda n, s, c: class_matching.RowMatch(
        [x.id for x in c] + [-1], "name", [], []) if len(n) == len(c) + 1 else real(n, s, c))
    assert tool.main(argv) == 0
    broken = json.loads((tmp_path / "e/eval_results.json").read_text())["classifiers"]
    assert broken[0]["overall"]["map"] != pytest.approx(got[1]["overall"]["map"], abs=1e-6)
