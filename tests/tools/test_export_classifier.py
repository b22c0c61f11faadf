"""tools/export_classifier.py (`mmovod export`): writes the format, prints how the detector loads it, bad input is one line."""
import numpy as np
import pytest
import torch

from mmovod.classifiers.sidecar import make_sidecar, save_classifier
from mmovod.cli.main import main as mmovod_main
from tools import export_classifier

NAMES = ["cone", "hard hat", "digger"]


def classifier(tmp_path, *, kind="text", space="clip", dtype=np.float32):
    array = np.random.default_rng(0).standard_normal((3, 8)).astype(dtype)
    path = tmp_path / f"{kind}.npy"
    save_classifier(path, array, make_sidecar(array, kind, {"clip_model": "ViT-B/32", "embed_dim": 8}, space=space,
                                              class_names=NAMES))
    return path


def test_mmovod_export_writes_and_prints_the_loading_lines(tmp_path, capsys):
    src = classifier(tmp_path)
    out = tmp_path / "mine.pt"
    assert mmovod_main(["export", str(src), "--format", "ultralytics", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"wrote {out}, {out}.json"
    assert printed[1] == ("note: the rows are 8-d; the released Ultralytics YOLO-World models take 512-d (CLIP "
                          "ViT-B/32): this file fits only a detector built for 8-d embeddings (--embed-dim 512 "
                          "refuses such rows)")
    assert printed[2] == "Ultralytics YOLO-World loads it with (docs/handoff.md):"
    assert f"  saved = torch.load({str(out)!r}, weights_only=True)" in printed
    assert torch.load(out, weights_only=True)["names"] == NAMES


def test_detic_prints_its_config_lines(tmp_path, capsys):
    out = tmp_path / "d.npy"
    assert export_classifier.main([str(classifier(tmp_path)), "--format", "detic", "--out-path", str(out),
                                   "--embed-dim", "8"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[2] == f"  MODEL.ROI_BOX_HEAD.USE_ZEROSHOT_CLS True MODEL.ROI_BOX_HEAD.ZEROSHOT_WEIGHT_PATH {out} " \
                         "MODEL.ROI_HEADS.NUM_CLASSES 3 MODEL.ROI_BOX_HEAD.ZEROSHOT_WEIGHT_DIM 8"


def test_rows_of_the_released_detectors_width_print_no_note(tmp_path, capsys):
    array = np.random.default_rng(1).standard_normal((3, 512)).astype(np.float32)
    src = tmp_path / "wide.npy"
    save_classifier(src, array, make_sidecar(array, "text", {"clip_model": "ViT-B/32", "embed_dim": 512},
                                             class_names=NAMES))
    assert export_classifier.main([str(src), "--format", "yolo-world", "--out-path", str(tmp_path / "y.npy")]) == 0
    assert "note:" not in capsys.readouterr().out


BAD = {
    "aggregated": (lambda t: [classifier(t, kind="vision-aggregated", space="aggregator", dtype=np.float16),
                              "--format", "yolo-world"],
                   "export rows in CLIP's space instead"),
    "width": (lambda t: [classifier(t), "--format", "yolo-world", "--embed-dim", "512"],
              "rows are 8-d (CLIP ViT-B/32), the detector takes 512-d embeddings"),
    "no_clip": (lambda t: [np.save(t / "bare.npy", np.ones((3, 8), np.float32)) or t / "bare.npy", "--format", "detic"],
                "no sidecar names the CLIP that made it"),
    "missing": (lambda t: [t / "nothing.npy", "--format", "detic"], "nothing.npy: file not found"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, bad_input, case):
    make, needle = BAD[case]
    out = tmp_path / "out" / "x.npy"
    out.parent.mkdir()
    bad_input(export_classifier.main, [str(a) for a in make(tmp_path)] + ["--out-path", str(out)], out, needle)


def test_the_classifier_itself_as_the_output_is_refused_and_left_as_it_was(tmp_path, bad_input):
    src = classifier(tmp_path)
    before = (src.read_bytes(), (tmp_path / "text.npy.json").read_bytes())
    bad_input(export_classifier.main, [str(src), "--format", "yolo-world", "--out-path", str(src)], src,
              "text.npy: is also an input of this command")
    assert (src.read_bytes(), (tmp_path / "text.npy.json").read_bytes()) == before
