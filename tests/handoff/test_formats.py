"""Each hand-off format, loaded the way its detector loads it (their few loading lines re-typed here), and the refusals.

Detic (facebookresearch/Detic 436cda2): `ZeroShotClassifier.__init__` (np.load as float32, transposed, a zero
background column, columns L2-normalised, `shape[1] == NUM_CLASSES + 1`), built only with
`USE_ZEROSHOT_CLS` (default False), and `train_net.py`'s `do_test` (one `TEST_CLASSIFIERS` entry per
`DATASETS.TEST` entry, by position). YOLO-World (AILab-CVC/YOLO-World 4f70adb): `SimpleYOLOWorldDetector.__init__`
and `extract_feat` (np.load -> float tensor -> `embeddings[None]`; label i is row i), the config executed as
Python, the test dataset's `metainfo` classes, `reparameterize_yoloworld.py` (np.load without a cast).
Ultralytics 8.4.190: `torch.load(path, weights_only=True)`, then what `WorldModel.set_classes` and
`YOLOWorld.set_classes` set (txt_feats (1, C, D), head nc, names) and what `WorldModel.predict` does with txt_feats.
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

DETIC_DEFAULTS = {"MODEL.ROI_BOX_HEAD.USE_ZEROSHOT_CLS": "False", "MODEL.RESET_CLS_TESTS": "False",
                  "DATASETS.TEST": "('oid_val_expanded', 'objects365_v2_val')"}  # Detic's defaults, and a config's tests


def detic_options(line, base=DETIC_DEFAULTS):
    """A config after `merge_from_list` of a pasted line (values decoded as yacs does: a Python literal, else text)."""
    words = shlex.split(line)
    merged = {**base, **dict(zip(words[::2], words[1::2]))}
    def decode(value):
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
    return {key: decode(value) for key, value in merged.items()}


def detic_test_classifiers(cfg):
    """What `do_test` hands `reset_cls_test` for each test dataset: its classifier and class count, by position."""
    if not cfg["MODEL.RESET_CLS_TESTS"]:
        return {}
    return {name: (cfg["MODEL.TEST_CLASSIFIERS"][d], cfg["MODEL.TEST_NUM_CLASSES"][d])
            for d, name in enumerate(cfg["DATASETS.TEST"])}


def detic_loads(path, num_classes, zs_weight_dim):
    zs_weight = torch.tensor(np.load(path), dtype=torch.float32).permute(1, 0).contiguous()  # D x C
    zs_weight = torch.cat([zs_weight, zs_weight.new_zeros((zs_weight_dim, 1))], dim=1)  # D x (C + 1)
    zs_weight = F.normalize(zs_weight, p=2, dim=0)
    assert zs_weight.shape[1] == num_classes + 1, zs_weight.shape
    return zs_weight


def yolo_world_config(lines):
    """The printed config lines run as an mmengine Python config runs (the elided `...` dropped)."""
    namespace = {}
    exec("\n".join(line.replace(", ...)", ")") for line in lines), namespace)
    return namespace


def yolo_world_test_classes(config):
    """The test dataset's classes: what names label i (mmdet's `metainfo`; COCO's 80 when not set)."""
    return config["test_dataloader"]["dataset"].get("metainfo", {}).get("classes", "COCO's 80")


def yolo_world_loads(embedding_path):
    embeddings = torch.nn.Parameter(torch.from_numpy(np.load(embedding_path)).float())
    return embeddings[None]


def yolo_world_class_texts(class_text_path):
    with open(class_text_path) as f:
        return [x[0] for x in json.load(f)]


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
    cfg = detic_options(done.lines[0])
    assert cfg["MODEL.ROI_BOX_HEAD.USE_ZEROSHOT_CLS"] is True  # else Detic builds a plain linear classifier
    zs_weight = detic_loads(cfg["MODEL.ROI_BOX_HEAD.ZEROSHOT_WEIGHT_PATH"], cfg["MODEL.ROI_HEADS.NUM_CLASSES"],
                            cfg["MODEL.ROI_BOX_HEAD.ZEROSHOT_WEIGHT_DIM"])
    np.testing.assert_allclose(zs_weight[:, :-1].numpy(), unit(array).T, rtol=1e-6, atol=1e-7)
    assert np.load(out).dtype == np.float32 and np.array_equal(np.load(out), array)
    assert (tmp_path / "detic/mine.classes.txt").read_text().splitlines() == NAMES
    assert [line for line in (tmp_path / "detic/mine.detic.txt").read_text().splitlines()
            if not line.startswith("#")] == done.lines
    side = read_sidecar(out)
    assert side.space == "aggregator" and side.class_names == NAMES and side.details["exported_from"] == str(src)


def test_yolo_world_reads_unit_rows_and_its_test_classes_in_row_order(tmp_path):
    array = rows(1)
    done = export_classifier(classifier(tmp_path, array), "yolo-world", tmp_path / "yw.npy")
    assert done.files == [tmp_path / "yw.npy", tmp_path / "yw.npy.json", tmp_path / "yw.classes.txt",
                          tmp_path / "yw.class_texts.json"]
    config = yolo_world_config(done.lines)
    model = config["model"]
    txt_feats = yolo_world_loads(model["embedding_path"])
    assert txt_feats.shape == (1, model["num_prompts"], model["prompt_dim"]) == (1, 4, 16)
    # label i is row i, named by the test dataset's i-th class
    assert yolo_world_test_classes(config) == tuple(NAMES)
    assert model["num_test_classes"] == model["num_train_classes"] == len(NAMES)
    assert model["bbox_head"]["head_module"]["num_classes"] == model["train_cfg"]["assigner"]["num_classes"] == 4
    np.testing.assert_allclose(txt_feats[0].detach().numpy(), unit(array), rtol=1e-6, atol=1e-7)
    assert yolo_world_class_texts(tmp_path / "yw.class_texts.json") == NAMES
    assert np.load(tmp_path / "yw.npy").dtype == np.float32 and read_sidecar(tmp_path / "yw.npy").normalized
    assert torch.from_numpy(np.load(tmp_path / "yw.npy")).dtype == torch.float32  # reparameterize_yoloworld casts not


def test_the_yolo_world_check_catches_a_test_dataset_without_the_rows_classes(tmp_path, monkeypatch):
    """Plant the bug: the earlier lines named the classes only by class_text_path, which the detector never reads."""
    from mmovod.handoff import yolo_world

    earlier = ["model = dict(type='SimpleYOLOWorldDetector', embedding_path='yw.npy', num_prompts=4, ...)",
               "test_dataloader = dict(dataset=dict(type='MultiModalDataset', class_text_path='t.json', ...))"]
    monkeypatch.setattr(yolo_world, "yolo_world_config_lines", lambda *args: earlier)
    done = export_classifier(classifier(tmp_path), "yolo-world", tmp_path / "yw.npy")
    assert yolo_world_test_classes(yolo_world_config(done.lines)) != tuple(NAMES)


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
    txt_feats = yolo_world_loads(tmp_path / "yw.npy")
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
    array = rows(4, dim=512)
    bare = tmp_path / "released.npy"
    np.save(bare, array)
    (tmp_path / "names.txt").write_text("\n".join(NAMES) + "\n")
    narrow = tmp_path / "narrow.npy"
    np.save(narrow, rows(4))
    with pytest.raises(InputError, match="rows are 16-d, but --clip_model ViT-B/32 gives 512-d embeddings"):
        export_classifier(narrow, "detic", tmp_path / "n.npy", class_names=tmp_path / "names.txt", clip_model="ViT-B/32")
    assert not (tmp_path / "n.npy").exists()
    with pytest.raises(InputError, match="no sidecar names the CLIP that made it; pass --clip_model"):
        export_classifier(bare, "detic", tmp_path / "d.npy", class_names=tmp_path / "names.txt")
    with pytest.raises(InputError, match="no sidecar says which space its rows are in"):
        export_classifier(bare, "yolo-world", tmp_path / "y.npy", class_names=tmp_path / "names.txt", clip_model="ViT-B/32")
    with pytest.raises(InputError, match="no class names"):
        export_classifier(bare, "detic", tmp_path / "d.npy", clip_model="ViT-B/32")
    export_classifier(bare, "yolo-world", tmp_path / "y.npy", class_names=tmp_path / "names.txt",
                      clip_model="ViT-B/32", space="clip")
    assert (tmp_path / "y.classes.txt").read_text().splitlines() == NAMES
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
        "MODEL.ROI_BOX_HEAD.USE_ZEROSHOT_CLS True MODEL.ROI_BOX_HEAD.ZEROSHOT_WEIGHT_PATH out/mm.npy "
        "MODEL.ROI_HEADS.NUM_CLASSES 5 MODEL.ROI_BOX_HEAD.ZEROSHOT_WEIGHT_DIM 512",
        "DATASETS.TEST '(\"YOUR_DATASET\",)' MODEL.RESET_CLS_TESTS True MODEL.TEST_CLASSIFIERS '(\"out/mm.npy\",)' "
        "MODEL.TEST_NUM_CLASSES '(5,)'"]


def test_detic_lines_paste_as_one_argument_per_value_for_any_path():
    """A shell splits each line into option-value pairs whose values are the path and a tuple holding it."""
    for path in ("my classifiers/mm.npy", "it's/\"x\" $HOME.npy"):
        first, second = (detic_options(line, {}) for line in detic_config_lines(path, 3, 512))
        assert first["MODEL.ROI_BOX_HEAD.ZEROSHOT_WEIGHT_PATH"] == path and len(first) == 4
        assert second["MODEL.TEST_CLASSIFIERS"] == (path,) and second["MODEL.TEST_NUM_CLASSES"] == (3,)


def test_detic_swap_line_gives_each_test_dataset_a_classifier():
    """Detic's do_test indexes TEST_CLASSIFIERS by the position of each DATASETS.TEST entry: a config testing on
    two datasets (Detic's own 21k configs) fails with the line unless it names the one dataset."""
    line = detic_config_lines("out/mm.npy", 5, 512)[1]
    assert detic_test_classifiers(detic_options(line)) == {"YOUR_DATASET": ("out/mm.npy", 5)}
    earlier = " ".join(shlex.quote(word) for word in shlex.split(line)[2:])  # plant the bug: no DATASETS.TEST
    with pytest.raises(IndexError):
        detic_test_classifiers(detic_options(earlier))


def test_detic_takes_rows_of_any_space_but_offers_the_test_time_swap_only_for_clip_space(tmp_path):
    """A detector trained on text rows learned CLIP's space: aggregator-space rows are for training with them."""
    own = export_classifier(classifier(tmp_path, rows().astype(np.float16), kind="vision-aggregated", space="aggregator"),
                            "detic", tmp_path / "own.npy")
    assert len(own.lines) == 1 and "MODEL.ROI_BOX_HEAD.ZEROSHOT_WEIGHT_PATH" in own.lines[0]
    assert "cannot be swapped into a detector trained on text rows" in (tmp_path / "own.detic.txt").read_text()
    clip = export_classifier(classifier(tmp_path, name="clip.npy"), "detic", tmp_path / "clip_out.npy")
    assert len(clip.lines) == 2 and "MODEL.RESET_CLS_TESTS True" in clip.lines[1]
    assert "replace YOUR_DATASET" in (tmp_path / "clip_out.detic.txt").read_text()
