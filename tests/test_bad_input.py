"""Every bad input of the foundation tools: exit 2, one stderr line naming the file, no output file."""
import json

import numpy as np
import pytest

from tests.lvis_fixtures import annotation, small_doc, write
from tools import get_lvis_cat_info, norm_feat_sum_norm, remove_lvis_rare


def assert_clean_failure(capsys, code, out_dir, must_mention):
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert must_mention in err
    leftovers = [p.name for p in out_dir.iterdir() if "norare" in p.name or "cat_info" in p.name
                 or p.name.startswith(".") or p.name.startswith("out")]
    assert leftovers == []


def lvis_cases(tmp_path):
    missing_freq = small_doc()
    del missing_freq["categories"][1]["frequency"]
    bad_cat = small_doc()
    bad_cat["annotations"].append(annotation(99, 100, 42))
    no_anns = small_doc()
    del no_anns["annotations"]
    no_cats = small_doc()
    del no_cats["categories"]
    truncated = json.dumps(small_doc())[:-40]
    return {
        "missing": (None, "not found"),
        "not_json": ("this is not json", "not valid JSON"),
        "truncated": (truncated, "not valid JSON"),
        "no_annotations": (json.dumps(no_anns), "no 'annotations' key"),
        "no_categories": (json.dumps(no_cats), "no 'categories' key"),
        "missing_frequency": (json.dumps(missing_freq), "has no 'frequency'"),
        "unknown_category": (json.dumps(bad_cat), "category_id 42"),
        "top_level_list": ("[1, 2]", "JSON object"),
    }


LVIS_TOOL_CASES = [(remove_lvis_rare, case) for case in (
    "missing", "not_json", "truncated", "no_annotations", "no_categories", "missing_frequency",
    "unknown_category", "top_level_list")]
LVIS_TOOL_CASES += [(get_lvis_cat_info, case) for case in (
    "missing", "not_json", "truncated", "no_annotations", "no_categories", "unknown_category")]


@pytest.mark.parametrize("tool,case", LVIS_TOOL_CASES, ids=lambda v: getattr(v, "__name__", v).split(".")[-1])
def test_lvis_tools_bad_input(tmp_path, capsys, tool, case):
    text, mention = lvis_cases(tmp_path)[case]
    ann = tmp_path / "ann.json"
    if text is not None:
        ann.write_text(text)
    code = tool.main(["--ann", str(ann)])
    assert_clean_failure(capsys, code, tmp_path, mention)


def test_error_message_names_the_file(tmp_path, capsys):
    ann = tmp_path / "ann.json"
    ann.write_text("{")
    assert remove_lvis_rare.main(["--ann", str(ann)]) == 2
    assert str(ann) in capsys.readouterr().err


def test_output_folder_that_does_not_exist(tmp_path, capsys):
    ann = write(tmp_path / "ann.json", small_doc())
    code = remove_lvis_rare.main(["--ann", str(ann), "--out", str(tmp_path / "nope" / "out.json")])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "nope").exists()


def save(path, array):
    np.save(path, array)
    return str(path)


@pytest.mark.parametrize("case,mention", [
    ("shape", "does not match"),
    ("zero_row", "row 1 is all zeros"),
    ("nan", "row 2 holds NaN"),
    ("three_d", "expected a 2-D array"),
    ("missing", "not found"),
    ("not_npy", "not a readable .npy"),
])
def test_norm_feat_sum_norm_bad_input(tmp_path, capsys, case, mention):
    good = np.ones((4, 3), np.float32)
    a = save(tmp_path / "a.npy", good)
    other = {
        "shape": lambda: save(tmp_path / "b.npy", np.ones((5, 3))),
        "zero_row": lambda: save(tmp_path / "b.npy", np.array([[1, 0, 0], [0, 0, 0], [1, 1, 1], [2, 2, 2]], float)),
        "nan": lambda: save(tmp_path / "b.npy", np.array([[1, 0, 0], [1, 0, 0], [np.nan, 1, 1], [2, 2, 2]])),
        "three_d": lambda: save(tmp_path / "b.npy", np.ones((4, 3, 1))),
        "missing": lambda: str(tmp_path / "b.npy"),
        "not_npy": lambda: (tmp_path / "b.npy").write_text("garbage") and str(tmp_path / "b.npy"),
    }[case]()
    code = norm_feat_sum_norm.main(["--feat1-path", a, "--feat2-path", other, "--out-path", str(tmp_path / "out.npy")])
    err = capsys.readouterr().err
    assert code == 2 and mention in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out.npy").exists() and not (tmp_path / "out.npy.json").exists()
