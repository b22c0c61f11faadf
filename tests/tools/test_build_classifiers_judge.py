"""build_classifiers.py --judge: leave-one-out from the build's own embeddings (none encoded twice), written to
leave-one-out.json, printed, and judged again on a re-run without encoding a single image."""
import json

import numpy as np
import pytest

from mmovod.classifiers.vision import average_classifier
from mmovod.clip import image_encoding
from mmovod.vocabulary import judging
from tests.own_classes import CLASSES, build

pytestmark = pytest.mark.slow  # each test runs whole builds


def test_judge_uses_the_build_embeddings_and_a_rerun_encodes_nothing(own_classes, tmp_path, capsys, monkeypatch):
    root, out = own_classes["root"], tmp_path / "out"
    calls = []
    real = image_encoding.encode_items
    monkeypatch.setattr(image_encoding, "encode_items", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert build(own_classes, out, "--judge", "--load-path", root / "agg.pth", "--num-layers", "1") == 0
    printed = capsys.readouterr().out
    assert len(calls) == 1  # one encoding pass (whole images: both vision classifiers share it)
    doc = json.loads((out / "leave-one-out.json").read_text())
    photos = sum(n for *_, n in CLASSES)
    assert set(doc["kinds"]) == {"text", "vision-average", "vision-aggregated", "multi-modal-average",
                                 "multi-modal-aggregated",  # the test's aggregator is not trained for CLIP's space:
                                 "vision-aggregated (mapped)", "multi-modal-aggregated (mapped)"}
    assert all(k["overall"]["photos"] == photos for k in doc["kinds"].values())
    assert doc["not_judgeable"] == []
    assert f"leave-one-out on {photos} photos, each" in printed
    # the kept embeddings are the ones the written classifier was made from
    kept = judging.load_embeddings(out, judging.stored_fingerprints(out), len(CLASSES))["vision-average"]
    assert np.allclose(average_classifier(kept), np.load(out / "vision-average.npy"), atol=1e-6)

    monkeypatch.setattr(image_encoding, "encode_items", lambda *a, **k: (_ for _ in ()).throw(AssertionError("encoded")))
    assert build(own_classes, out, "--judge", "--load-path", root / "agg.pth", "--num-layers", "1") == 0
    assert "computed: nothing" in capsys.readouterr().out
    assert json.loads((out / "leave-one-out.json").read_text())["kinds"] == doc["kinds"]


def test_a_class_with_one_photo_is_reported_not_judgeable(own_classes, tmp_path, capsys):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("traffic cone\nexcavator, digger\nhard hat\n")
    photos = tmp_path / "photos"
    for folder, n in (("traffic cone", 2), ("digger", 1)):
        for i in range(n):
            src = own_classes["root"] / "photos" / folder / f"{i}.jpg"
            (photos / folder).mkdir(parents=True, exist_ok=True)
            (photos / folder / f"{i}.jpg").write_bytes(src.read_bytes())
    assert build(own_classes, tmp_path / "out", "--judge", vocab=vocab, photos=photos) == 0
    printed = capsys.readouterr().out
    assert "not judgeable (one photo): excavator" in printed
    doc = json.loads((tmp_path / "out/leave-one-out.json").read_text())
    assert doc["judged_photos_per_class"] == {"traffic cone": 2, "excavator": 0, "hard hat": 0}
    assert doc["kinds"]["vision-average"]["per_class"][1] is None


def test_a_damaged_embeddings_file_is_encoded_again(own_classes, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    assert build(own_classes, out, "--judge") == 0
    with np.load(out / judging.EMBEDDINGS_FILE) as kept:  # whole images: both vision classifiers' views kept once
        assert "vision-average/embeddings" in kept.files or "vision-aggregated/embeddings" in kept.files
    first = json.loads((out / "leave-one-out.json").read_text())["kinds"]
    (out / judging.EMBEDDINGS_FILE).write_bytes(b"PK\x03\x04 not a zip")
    calls = []
    real = image_encoding.encode_items
    monkeypatch.setattr(image_encoding, "encode_items", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert build(own_classes, out, "--judge") == 0
    assert len(calls) == 1 and "computed: vision-average" in capsys.readouterr().out
    assert json.loads((out / "leave-one-out.json").read_text())["kinds"] == first
