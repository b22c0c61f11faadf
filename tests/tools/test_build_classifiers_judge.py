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


def test_the_aggregator_checkpoint_decides_the_rows_space_the_handoff_and_the_detic_lines(own_classes, tmp_path,
                                                                                          capsys):
    """An aggregator trained for CLIP's space makes CLIP-space aggregated rows: no mapped judgement, exportable, the
    test-time-swap Detic line printed; the same weights without the recorded objective (the authors' kind of file)
    make rows a text-trained detector cannot use: labelled, judged raw and mapped, only the training line printed
    when --prefer hands them off."""
    import torch

    from mmovod.aggregator.model import CLIP_SPACE_OBJECTIVE

    root = own_classes["root"]
    state = torch.load(root / "agg.pth", weights_only=True)["state_dict"]
    torch.save({"state_dict": state, "objective": CLIP_SPACE_OBJECTIVE}, tmp_path / "clip_space.pth")
    out = tmp_path / "clip"
    assert build(own_classes, out, "--load-path", tmp_path / "clip_space.pth", "--num-layers", "1",
                 "--export", "vision-aggregated", "--prefer", "multi-modal-aggregated") == 0
    printed = capsys.readouterr().out
    assert json.loads((out / "vision-aggregated.npy.json").read_text())["space"] == "clip"
    assert json.loads((out / "multi-modal-aggregated.npy.json").read_text())["space"] == "clip"
    assert not [k for k in json.loads((out / "leave-one-out.json").read_text())["kinds"] if "(mapped)" in k]
    assert (out / "export/vision-aggregated.npy").is_file()
    assert "hand-off: multi-modal-aggregated, asked for with --prefer" in printed
    assert "MODEL.RESET_CLS_TESTS True" in printed and "the second line swaps it in at test time" in printed
    doc = json.loads((out / "vocabulary.json").read_text())
    assert doc["handoff"]["kind"] == "multi-modal-aggregated" and doc["spaces"]["vision-aggregated"] == "clip"

    own = tmp_path / "own"
    assert build(own_classes, own, "--load-path", root / "agg.pth", "--num-layers", "1",
                 "--prefer", "multi-modal-aggregated") == 0
    printed = capsys.readouterr().out
    assert json.loads((own / "multi-modal-aggregated.npy.json").read_text())["space"] == "mixed"
    assert "  vision-aggregated: " + str(own / "vision-aggregated.npy") + "; rows NOT in CLIP's space" in printed
    assert "MODEL.RESET_CLS_TESTS True" not in printed
    assert "its rows are not in CLIP's space, so it cannot be swapped into a detector trained on text rows" in printed
