"""Kinds the table adds, end to end: the shipped text-ensemble, and a kind registered from outside the package
(its rows function in this module, one `register_kind`) that is built, judged, evaluated and exported with no
other change to mmovod."""
import json

import numpy as np
import pytest
import torch

from mmovod.classifiers.kinds import KINDS, ClassifierKind, register_kind, unregister_kind
from mmovod.classifiers.sidecar import read_sidecar
from mmovod.classifiers.text import sentence_classifier
from mmovod.cli.main import main as mmovod_main
from mmovod.clip.specs import ClipSpec
from tests.own_classes import CLASSES, build
from tools import eval_classifiers

pytestmark = pytest.mark.slow  # each test runs whole builds


def unit(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def photo_of(sentence):
    return f"a photo of {sentence}"


def photo_prompt_rows(sentences_per_class, clip, progress=False):
    """The text-photo kind's rows: each class's prompts as "a photo of <prompt>", embedded as the text kind
    embeds its own."""
    return sentence_classifier([[photo_of(s) for s in group] for group in sentences_per_class], clip, progress=progress)


@pytest.fixture
def text_photo():
    """A kind from outside mmovod, in the table for one test."""
    kind = register_kind(ClassifierKind("text-photo", "clip", "float32", ("prompts",),
                                        "mean CLIP text embedding of 'a photo of <prompt>' per prompt of each class",
                                        KINDS["text"].details, rows=photo_prompt_rows))
    yield kind
    unregister_kind("text-photo")


def photo_annotations(own_classes, tmp_path):
    """An LVIS-format file whose boxes are the own classes' photos, whole (category ids as in lvis.json)."""
    root = own_classes["root"]
    images, annotations = [], []
    for c, (_, _, folder, n) in enumerate(CLASSES):
        for i in range(n):
            size = (48 + 8 * i, 40 + 6 * c)  # tests/own_classes.py draws them at this size
            images.append({"id": len(images) + 1, "file_name": f"{folder}/{i}.jpg", "width": size[0], "height": size[1]})
            annotations.append({"id": len(images), "image_id": len(images), "category_id": c + 1,
                                "bbox": [0, 0, size[0] - 1, size[1] - 1], "area": size[0] * size[1]})
    doc = json.loads((root / "lvis.json").read_text())
    ann = tmp_path / "val.json"
    ann.write_text(json.dumps({**doc, "images": images, "annotations": annotations}))
    return ann


def test_a_kind_registered_from_outside_is_built_judged_evaluated_and_exported(own_classes, tmp_path, capsys,
                                                                               text_photo):
    root, out = own_classes["root"], tmp_path / "out"
    assert build(own_classes, out, "--judge", "--export", "text-photo", vocab=root / "lvis.json") == 0
    assert "text-photo" in capsys.readouterr().out
    # built: its rows are the embeddings of its own sentences, with its own sidecar
    rows, side = np.load(out / "text-photo.npy"), read_sidecar(out / "text-photo.npy")
    prompts = [c["text"]["sentences"] for c in json.loads((out / "vocabulary.json").read_text())["classes"]]
    bundle = ClipSpec(model=str(root / "clip/tiny_clip.json"), pretrained=str(root / "clip/tiny_clip.pt"),
                      device="cpu").load("text")
    expected = sentence_classifier([[photo_of(p) for p in group] for group in prompts], bundle)
    np.testing.assert_allclose(rows, expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(unit(rows), unit(np.load(out / "text.npy")), atol=1e-3)  # its sentences, not the text kind's
    assert side.kind == "text-photo" and side.space == "clip" and side.category_ids == [1, 2, 3]
    # judged: leave-one-out scores it on the same held-out photos as the others
    judged = json.loads((out / "leave-one-out.json").read_text())["kinds"]
    assert judged["text-photo"]["overall"]["photos"] == judged["text"]["overall"]["photos"] == sum(n for *_, n in CLASSES)
    # exported by the build and by `mmovod export`
    np.testing.assert_allclose(np.load(out / "export/text-photo.npy"), unit(rows), rtol=1e-6, atol=1e-7)
    pt = tmp_path / "photo.pt"
    assert mmovod_main(["export", str(out / "text-photo.npy"), "--format", "ultralytics", "--out", str(pt)]) == 0
    saved = torch.load(pt, weights_only=True)
    np.testing.assert_allclose(saved["txt_feats"][0].numpy(), unit(rows), rtol=1e-6, atol=1e-7)
    assert saved["names"] == ["hard hat", "traffic cone", "excavator"]
    # evaluated: eval_classifiers accepts its sidecar's kind and scores it
    ann = photo_annotations(own_classes, tmp_path)
    argv = ["--classifiers", str(out / "text-photo.npy"), str(out / "text.npy"), "--ann", str(ann),
            "--img-dir", str(root / "photos"), "--out-dir", str(tmp_path / "eval"), "--nw", "0", "--device", "cpu"]
    assert eval_classifiers.main(argv) == 0
    results = json.loads((tmp_path / "eval/eval_results.json").read_text())["classifiers"]
    assert {(r["kind"], r["overall"]["crops"]) for r in results} == {("text-photo", 7), ("text", 7)}
    # the slip: without its row in the table the same file is refused, so the row is what made it work
    unregister_kind("text-photo")
    try:
        assert eval_classifiers.main([*argv[:2], *argv[3:]]) == 2
        assert "'kind' must be one of" in capsys.readouterr().err
    finally:
        register_kind(text_photo)


def test_text_ensemble_is_built_with_descriptions_judged_and_exportable(own_classes, tmp_path):
    root, out = own_classes["root"], tmp_path / "out"
    assert build(own_classes, out, "--no-judge") == 0
    assert not (out / "text-ensemble.npy").exists()  # no descriptions, no ensemble
    assert build(own_classes, out, "--descriptions", root / "descriptions.json", "--judge",
                 "--export", "text-ensemble") == 0
    text, described = np.load(out / "text.npy"), np.load(out / "descriptions.npy")
    rows = np.load(out / "text-ensemble.npy")
    np.testing.assert_allclose(rows, (unit(text) + unit(described)) / 2, rtol=1e-6, atol=1e-7)
    assert rows.dtype == np.float32
    side = read_sidecar(out / "text-ensemble.npy")
    assert side.kind == "text-ensemble" and side.space == "clip" and not side.normalized
    assert side.details["sources"] == {"text": "text.npy", "descriptions": "descriptions.npy"}
    assert side.details["formula"] == KINDS["text-ensemble"].computed
    doc = json.loads((out / "vocabulary.json").read_text())
    assert doc["files"]["text-ensemble"] == "text-ensemble.npy" and doc["spaces"]["text-ensemble"] == "clip"
    assert doc["classes"][0]["multi_modal"] == "descriptions + vision"  # the fusions still take the descriptions
    assert "text-ensemble" in json.loads((out / "leave-one-out.json").read_text())["kinds"]
    np.testing.assert_allclose(np.load(out / "export/text-ensemble.npy"), unit(rows), rtol=1e-6, atol=1e-7)
