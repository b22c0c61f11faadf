"""Each hand-off format, loaded the way its detector loads it (their few loading lines re-typed here), and the refusals.

Detic: `ZeroShotClassifier.__init__` (np.load as float32, transposed, a zero background column, columns
L2-normalised, `shape[1] == NUM_CLASSES + 1`). YOLO-World: `SimpleYOLOWorldDetector.__init__` and
`extract_feat` (np.load -> float tensor -> `embeddings[None]`), its dataset's `class_text_path`
(`json.load`, one list of texts per class). Ultralytics 8.4: `torch.load(path, weights_only=True)`, then what
`WorldModel.set_classes` and `YOLOWorld.set_classes` set (txt_feats (1, C, D), head nc, names) and what
`WorldModel.predict` does with txt_feats.
"""
import ast
import json
import shlex

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmovod.classifiers.sidecar import make_sidecar, read_sidecar, save_classifier
from mmovod.handoff import output
from mmovod.handoff.detic import detic_config_lines
from mmovod.handoff.formats import FORMATS, export_classifier
from mmovod.io.errors import InputError

CLIP = {"clip_model": "ViT-B/32", "pretrained": "openai", "embed_dim": 16}
NAMES = ["cone", "hard hat", "digger", "barrow"]


def rows(seed=0, count=4, dim=16):
    return np.random.default_rng(seed).standard_normal((count, dim)).astype(np.float32) * 3


def classifier(tmp_path, array=None, *, kind="multi-modal", space="clip", names=NAMES, name="mm.npy"):
    array = rows() if array is None else array
    path = tmp_path / name
    save_classifier(path, array, make_sidecar(array, kind, CLIP, space=space, class_names=names))
    return path


def unit(array):
    values = array.astype(np.float64)
    return values / np.sqrt((values ** 2).sum(axis=1, keepdims=True))


# --- the detectors' loading lines, re-typed ----------------------------------------------------------------

def detic_loads(path, num_classes, zs_weight_dim):
    zs_weight = torch.tensor(np.load(path), dtype=torch.float32).permute(1, 0).contiguous()  # D x C
    zs_weight = torch.cat([zs_weight, zs_weight.new_zeros((zs_weight_dim, 1))], dim=1)  # D x (C + 1)
    zs_weight = F.normalize(zs_weight, p=2, dim=0)
    assert zs_weight.shape[1] == num_classes + 1, zs_weight.shape
    return zs_weight


def yolo_world_loads(embedding_path, class_text_path):
    embeddings = torch.nn.Parameter(torch.from_numpy(np.load(embedding_path)).float())
    txt_feats = embeddings[None]
    with open(class_text_path) as f:
        class_texts = json.load(f)
    return txt_feats, [x[0] for x in class_texts]


def ultralytics_loads(path):
    saved = torch.load(path, weights_only=True)
    txt_feats, names = saved["txt_feats"], saved["names"]
    nc = len(names)
    x = torch.zeros(2, 3, 8, 8)
    batch_feats = txt_feats.type_as(x)
    if batch_feats.shape[0] != x.shape[0]:
        batch_feats = batch_feats.expand(x.shape[0], -1, -1)
    return txt_feats, names, nc, batch_feats


# --- each format --------------------------------------------------------------------------------------------

def test_detic_reads_the_rows_as_they_are_with_the_printed_options(tmp_path):
    array = rows()
    src = classifier(tmp_path, array, kind="vision-aggregated", space="aggregator", name="agg.npy")
    out = tmp_path / "detic" / "mine.npy"
    out.parent.mkdir()
    done = export_classifier(src, "detic", out)
    assert done.files == [out, tmp_path / "detic/mine.npy.json", tmp_path / "detic/mine.classes.txt",
                          tmp_path / "detic/mine.detic.txt"]
    first = shlex.split(done.lines[0])
    options = dict(zip(first[::2], first[1::2]))
    zs_weight = detic_loads(options["MODEL.ROI_BOX_HEAD.ZEROSHOT_WEIGHT_PATH"],
                            int(options["MODEL.ROI_HEADS.NUM_CLASSES"]), int(options["MODEL.ROI_BOX_HEAD.ZEROSHOT_WEIGHT_DIM"]))
    np.testing.assert_allclose(zs_weight[:, :-1].numpy(), unit(array).T, rtol=1e-6, atol=1e-7)
    assert np.load(out).dtype == np.float32 and np.array_equal(np.load(out), array)
    assert (tmp_path / "detic/mine.classes.txt").read_text().splitlines() == NAMES
    assert [line for line in (tmp_path / "detic/mine.detic.txt").read_text().splitlines()
            if not line.startswith("#")] == done.lines
    side = read_sidecar(out)
    assert side.space == "aggregator" and side.class_names == NAMES and side.details["exported_from"] == str(src)


def test_yolo_world_reads_unit_rows_and_the_class_texts_in_row_order(tmp_path):
    array = rows(1)
    done = export_classifier(classifier(tmp_path, array), "yolo-world", tmp_path / "yw.npy")
    assert done.files == [tmp_path / "yw.npy", tmp_path / "yw.npy.json", tmp_path / "yw.class_texts.json"]
    config = ast.parse(done.lines[0].replace(", ...)", ")")).body[0].value
    keywords = {k.arg: ast.literal_eval(k.value) for k in config.keywords}
    txt_feats, names = yolo_world_loads(keywords["embedding_path"], tmp_path / "yw.class_texts.json")
    assert txt_feats.shape == (1, keywords["num_prompts"], keywords["prompt_dim"]) == (1, 4, 16)
    assert names == NAMES and keywords["num_test_classes"] == len(names)
    np.testing.assert_allclose(txt_feats[0].detach().numpy(), unit(array), rtol=1e-6, atol=1e-7)
    assert np.load(tmp_path / "yw.npy").dtype == np.float32 and read_sidecar(tmp_path / "yw.npy").normalized


def test_ultralytics_reads_txt_feats_and_names_with_weights_only(tmp_path):
    array = rows(2)
    done = export_classifier(classifier(tmp_path, array), "ultralytics", tmp_path / "world.pt")
    assert done.files == [tmp_path / "world.pt", tmp_path / "world.pt.json"]
    assert f"saved = torch.load({str(tmp_path / 'world.pt')!r}, weights_only=True)" in done.lines
    txt_feats, names, nc, batch_feats = ultralytics_loads(tmp_path / "world.pt")
    assert txt_feats.dtype == torch.float32 and txt_feats.shape == (1, 4, 16) and batch_feats.shape == (2, 4, 16)
    assert names == NAMES and isinstance(names, list) and nc == 4
    np.testing.assert_allclose(txt_feats[0].numpy(), unit(array), rtol=1e-6, atol=1e-7)


def test_the_loading_checks_catch_rows_that_are_not_unit_length(tmp_path, monkeypatch):
    """Plant the bug the checks exist for: an export that skips the normalisation."""
    monkeypatch.setattr(output, "l2_normalise_rows", lambda array: array.astype(np.float64))
    array = rows(3)
    export_classifier(classifier(tmp_path, array), "yolo-world", tmp_path / "yw.npy")
    txt_feats, _ = yolo_world_loads(tmp_path / "yw.npy", tmp_path / "yw.class_texts.json")
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(txt_feats[0].detach().numpy(), unit(array), rtol=1e-6, atol=1e-7)


# --- what is refused ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["yolo-world", "ultralytics"])
def test_aggregator_rows_are_refused_for_clip_space_detectors_saying_what_works(tmp_path, fmt):
    src = classifier(tmp_path, rows().astype(np.float16), kind="vision-aggregated", space="aggregator")
    out = tmp_path / f"x{FORMATS[fmt].suffix}"
    with pytest.raises(InputError) as refused:
        export_classifier(src, fmt, out)
    assert str(refused.value).startswith(
        f"{src}: a vision-aggregated classifier has rows from the visual aggregator, whose outputs are not in CLIP's "
        "space (its rows have a mean cosine of -0.025")
    assert str(refused.value).endswith("the aggregated kinds of an aggregator trained for CLIP's space "
                                       "(train_visual_aggregator) (--format detic loads it as it is)")
    assert not out.exists()


def test_width_nan_and_zero_rows_and_the_wrong_suffix_are_refused(tmp_path):
    src = classifier(tmp_path)
    with pytest.raises(InputError, match=r"rows are 16-d \(CLIP ViT-B/32\), the detector takes 512-d embeddings"):
        export_classifier(src, "ultralytics", tmp_path / "x.pt", embed_dim=512)
    assert export_classifier(src, "ultralytics", tmp_path / "x.pt", embed_dim=16).files[0].exists()
    for bad, message in ((np.nan, "row 2 holds NaN or infinite values"),
                         (0, r"rows 2 \(digger\) are all zeros; a detector never predicts a class whose row is zeros$")):
        array = rows()
        array[2] = bad
        with pytest.raises(InputError, match=message):
            export_classifier(classifier(tmp_path, array, name="bad.npy"), "detic", tmp_path / "bad-out.npy")
    with pytest.raises(InputError, match="a ultralytics export is a .pt file"):
        export_classifier(src, "ultralytics", tmp_path / "x.npy")
    assert not (tmp_path / "bad-out.npy").exists()


def test_a_vision_classifier_with_a_class_without_photos_is_refused_naming_the_class_and_the_fix(tmp_path):
    array = rows()
    array[3] = 0
    path = tmp_path / "vision-average.npy"
    save_classifier(path, array, make_sidecar(array, "vision-average", CLIP, class_names=NAMES,
                                              details={"classes_without_exemplars": ["barrow"]}))
    with pytest.raises(InputError) as refused:
        export_classifier(path, "detic", tmp_path / "out.npy")
    assert str(refused.value) == (f"{path}: rows 3 (barrow) are all zeros (classes without exemplars: use the "
                                  "multi-modal classifier, whose rows fall back to text); a detector never predicts "
                                  "a class whose row is zeros")


def test_a_file_without_sidecar_is_described_by_its_class_names_clip_and_space(tmp_path):
    array = rows(4)
    bare = tmp_path / "released.npy"
    np.save(bare, array)
    (tmp_path / "names.txt").write_text("\n".join(NAMES) + "\n")
    with pytest.raises(InputError, match="no sidecar names the CLIP that made it; pass --clip_model"):
        export_classifier(bare, "detic", tmp_path / "d.npy", class_names=tmp_path / "names.txt")
    with pytest.raises(InputError, match="no sidecar says which space its rows are in"):
        export_classifier(bare, "yolo-world", tmp_path / "y.npy", class_names=tmp_path / "names.txt", clip_model="ViT-B/32")
    with pytest.raises(InputError, match="no class names"):
        export_classifier(bare, "detic", tmp_path / "d.npy", clip_model="ViT-B/32")
    export_classifier(bare, "yolo-world", tmp_path / "y.npy", class_names=tmp_path / "names.txt",
                      clip_model="ViT-B/32", space="clip")
    assert yolo_world_loads(tmp_path / "y.npy", tmp_path / "y.class_texts.json")[1] == NAMES
    assert read_sidecar(tmp_path / "y.npy").clip_model == "ViT-B/32"


def test_lvis_categories_name_the_rows_of_a_sidecar_with_category_ids(tmp_path):
    array = rows(5, count=3)
    src = tmp_path / "avg.npy"
    save_classifier(src, array, make_sidecar(array, "vision-average", CLIP, category_ids=[7, 3, 5]))
    ann = tmp_path / "lvis.json"
    ann.write_text(json.dumps({"categories": [{"id": i, "name": n, "synonyms": [n]}
                                              for i, n in ((3, "cone"), (5, "digger"), (7, "barrow"))]}))
    export_classifier(src, "ultralytics", tmp_path / "x.pt", class_names=ann)
    assert ultralytics_loads(tmp_path / "x.pt")[1] == ["barrow", "cone", "digger"]
    (tmp_path / "wrong.txt").write_text("cone\nhard hat\n")
    with pytest.raises(InputError, match="lists 2 classes, .* has 3 rows"):
        export_classifier(src, "detic", tmp_path / "d.npy",
                          class_names=tmp_path / "wrong.txt")


def test_class_names_that_disagree_with_the_sidecar_and_another_clip_are_refused(tmp_path):
    src = classifier(tmp_path)
    (tmp_path / "names.txt").write_text("cone\nhard hat\nexcavator\nbarrow\n")
    with pytest.raises(InputError, match="row 2 is 'excavator', the classifier's sidecar says 'digger'"):
        export_classifier(src, "detic", tmp_path / "d.npy", class_names=tmp_path / "names.txt")
    (tmp_path / "same.txt").write_text("Cone\nhard_hat\ndigger\nbarrow\n")  # compared as the vocabulary reader does
    assert export_classifier(src, "detic", tmp_path / "d.npy", class_names=tmp_path / "same.txt", clip_model="ViT-B-32")
    with pytest.raises(InputError, match="made with CLIP ViT-B/32, but --clip_model says ViT-L/14"):
        export_classifier(src, "detic", tmp_path / "d2.npy", clip_model="ViT-L/14")


def test_detic_lines():
    assert detic_config_lines("out/mm.npy", 5, 512) == [
        "MODEL.ROI_BOX_HEAD.ZEROSHOT_WEIGHT_PATH out/mm.npy MODEL.ROI_HEADS.NUM_CLASSES 5 "
        "MODEL.ROI_BOX_HEAD.ZEROSHOT_WEIGHT_DIM 512",
        "MODEL.RESET_CLS_TESTS True MODEL.TEST_CLASSIFIERS '(\"out/mm.npy\",)' MODEL.TEST_NUM_CLASSES '(5,)'"]


def test_detic_lines_paste_as_one_argument_per_value_for_any_path():
    """A shell splits each line into option-value pairs whose values are the path and a tuple holding it."""
    for path in ("my classifiers/mm.npy", "it's/\"x\" $HOME.npy"):
        first, second = (shlex.split(line) for line in detic_config_lines(path, 3, 512))
        assert first[1] == path and len(first) == 6
        assert ast.literal_eval(second[3]) == (path,) and ast.literal_eval(second[5]) == (3,)


def test_detic_takes_rows_of_any_space_but_offers_the_test_time_swap_only_for_clip_space(tmp_path):
    """A detector trained on text rows learned CLIP's space: aggregator-space rows are for training with them."""
    own = export_classifier(classifier(tmp_path, rows().astype(np.float16), kind="vision-aggregated", space="aggregator"),
                            "detic", tmp_path / "own.npy")
    assert len(own.lines) == 1 and own.lines[0].startswith("MODEL.ROI_BOX_HEAD.ZEROSHOT_WEIGHT_PATH")
    assert "cannot be swapped into a detector trained on text rows" in (tmp_path / "own.detic.txt").read_text()
    clip = export_classifier(classifier(tmp_path, name="clip.npy"), "detic", tmp_path / "clip_out.npy")
    assert len(clip.lines) == 2 and clip.lines[1].startswith("MODEL.RESET_CLS_TESTS True")
