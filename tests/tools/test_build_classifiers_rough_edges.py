"""What a new user hits in the first hour with build_classifiers.py, each fixed: skipped photos and the report,
photos in the wrong folder, unused synonyms, descriptions for some classes, the aggregator checkpoint hint,
and the evaluation's AP plot on a small set."""
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from mmovod.evaluation import eval_report
from tests.own_classes import build, truncated_jpeg, with_photo
from tools import build_classifiers


@pytest.mark.slow
def test_skip_bad_names_the_image_and_the_report_and_judge_leave_it_out(own_classes, tmp_path, capsys):
    photos = with_photo(own_classes, tmp_path, truncated_jpeg)
    out = tmp_path / "out"
    assert build(own_classes, out, "--skip-bad", "--report", "--judge", photos=photos) == 0
    captured = capsys.readouterr()
    bad = str(photos / "traffic cone/bad.jpg")
    assert f"skipping {bad}, a photo of 'traffic cone': cannot read image: image file is truncated" in captured.err
    doc = json.loads((out / "vocabulary.json").read_text())
    assert bad not in [e["image"] for e in doc["classes"][1]["exemplars"]]
    assert [s["path"] for s in doc["classes"][1]["skipped_images"]] == [bad]
    page = (out / "report/index.html").read_text()
    assert "bad.jpg (cannot read image: image file is truncated" in page
    with Image.open(out / "report/sheets/0001_traffic-cone.jpg") as sheet:  # two pairs, not three
        assert sheet.size[0] == 2 * (2 * 128 + 6) + 3 * 12
    judged = json.loads((out / "leave-one-out.json").read_text())
    assert judged["photos_per_class"]["traffic cone"] == 2


@pytest.mark.slow
def test_a_photo_skipped_only_on_a_rebuild_is_listed_in_vocabulary_json_and_the_sidecars(own_classes, tmp_path, capsys):
    photos = with_photo(own_classes, tmp_path, truncated_jpeg)
    out = tmp_path / "out"
    assert build(own_classes, out, "--skip-bad", photos=photos) == 0
    (photos / "digger/empty.jpg").write_bytes(b"")  # skipped too: the rows do not change, the record does
    assert build(own_classes, out, "--skip-bad", photos=photos) == 0
    doc = json.loads((out / "vocabulary.json").read_text())
    assert [s["path"] for s in doc["classes"][2]["skipped_images"]] == [str(photos / "digger/empty.jpg")]
    assert [s["path"] for s in doc["classes"][1]["skipped_images"]] == [str(photos / "traffic cone/bad.jpg")]
    sidecar = json.loads((out / "vision-average.npy.json").read_text())
    assert sorted(s["path"] for s in sidecar["details"]["skipped_images"]) == \
        [str(photos / "digger/empty.jpg"), str(photos / "traffic cone/bad.jpg")]


def test_photos_directly_in_the_exemplar_folder_are_refused_with_the_layout(own_classes, tmp_path, bad_input):
    loose = tmp_path / "loose"
    loose.mkdir()
    for i, src in enumerate(sorted((own_classes["root"] / "photos/Hard_Hat").iterdir())):
        shutil.copy(src, loose / f"{i}.jpg")
    argv = ["--vocab", str(own_classes["root"] / "vocab.txt"), "--exemplars", str(loose), "--out-dir", str(tmp_path / "out"),
            *own_classes["clip"], *own_classes["views"]]
    bad_input(build_classifiers.main, argv, tmp_path / "out",
              "--exemplars expects one folder per class, DIR/<class name>/<photo>, but no folder here matches a class "
              "and 3 photos lie directly in it: 0.jpg, 1.jpg, 2.jpg;")


@pytest.mark.slow
def test_ignored_files_are_named(own_classes, tmp_path, capsys):
    photos = tmp_path / "photos"
    shutil.copytree(own_classes["root"] / "photos", photos)
    shutil.copy(photos / "digger/0.jpg", photos / "stray.jpg")
    (photos / "digger/notes.txt").write_text("not a photo")
    assert build(own_classes, tmp_path / "out", photos=photos) == 0
    captured = capsys.readouterr()
    assert f"ignored (not images in a class folder {photos}/<class name>/): {photos / 'digger/notes.txt'}, " \
           f"{photos / 'stray.jpg'}" in captured.out
    assert "1 exemplar folder or category matches no class: 'boats'" in captured.err


@pytest.mark.slow
def test_the_summary_says_synonyms_are_not_in_the_prompts(own_classes, tmp_path, capsys):
    assert build(own_classes, tmp_path / "a") == 0
    # 'digger' names a folder, 'safety helmet' none: the line says what synonyms do, not that they all matched
    assert "synonyms of 2 classes (hard hat, excavator) may name exemplar folders and evaluation categories but are " \
           "not in the text prompts" in capsys.readouterr().out
    assert build(own_classes, tmp_path / "b", "--avg_synonyms") == 0
    assert "synonyms of" not in capsys.readouterr().out


@pytest.mark.slow
def test_descriptions_for_some_classes_fall_back_to_the_class_name_prompt(own_classes, tmp_path, capsys):
    vocab = tmp_path / "vocab.json"
    vocab.write_text(json.dumps([{"name": "hard hat", "descriptions": ["A rigid yellow helmet.", "It has a brim."]},
                                 {"name": "traffic cone"}, {"name": "excavator", "synonyms": ["digger"]}]))
    out = tmp_path / "out"
    assert build(own_classes, out, vocab=vocab) == 0
    err = capsys.readouterr().err
    assert "descriptions for 1 of 3 classes; the others use their class-name prompt" in err
    assert "(give --descriptions FILE for them): traffic cone, excavator\n" in err
    text, described = np.load(out / "text.npy"), np.load(out / "descriptions.npy")
    assert np.allclose(described[1:], text[1:], atol=1e-5)  # the same sentence, "a traffic cone", by the same model
    assert not np.allclose(described[0], text[0], atol=1e-3)
    side = json.loads((out / "descriptions.npy.json").read_text())
    assert "class-name prompts for 2 classes without descriptions: traffic cone, excavator" in side["details"]["source"]


def test_a_missing_aggregator_checkpoint_names_the_download(own_classes, tmp_path, bad_input):
    argv = ["--vocab", str(own_classes["root"] / "vocab.txt"), "--exemplars", str(own_classes["root"] / "photos"),
            "--out-dir", str(tmp_path / "out"), "--load-path", str(tmp_path / "agg.pth"), *own_classes["clip"], *own_classes["views"]]
    bad_input(build_classifiers.main, argv, tmp_path / "out",
              "agg.pth: aggregator checkpoint not found (the released ones: python tools/download_assets.py --only "
              "checkpoints)")


def _plotted(monkeypatch, tmp_path, counts):
    figures = []
    monkeypatch.setattr(eval_report, "_png", lambda figure: figures.append(figure) or b"")
    monkeypatch.setattr(eval_report, "SCATTER_ABOVE", 0)  # the scatter's axis, drawn here for a few classes
    per_class = [{"crops": n, "ap": 0.5, "image_count": None} for n in counts]
    eval_report.plot_ap_vs_frequency([{"name": "text", "per_class": per_class}])
    [figure] = figures
    figure.canvas.draw()
    return figure.axes[0]


@pytest.mark.slow
def test_the_ap_plot_labels_small_sets_with_plain_numbers(monkeypatch, tmp_path):
    axis = _plotted(monkeypatch, tmp_path, [2, 3, 4, 5])
    assert axis.get_xscale() == "linear"
    labels = [t.get_text() for t in axis.get_xticklabels() if t.get_text()]
    assert labels and all(label.lstrip("−-").isdigit() for label in labels), labels
    assert axis.get_legend().get_texts()[0].get_fontsize() >= 10
    axis = _plotted(monkeypatch, tmp_path, [4, 4, 4])  # every class with the same count
    labels = [t.get_text() for t in axis.get_xticklabels() if t.get_text()]
    assert "4" in labels and all(label.lstrip("−-").isdigit() for label in labels), labels
    axis = _plotted(monkeypatch, tmp_path, [1, 5, 40, 300])
    assert axis.get_xscale() == "log"
    labels = [t.get_text() for t in axis.get_xticklabels() if t.get_text()]
    assert labels and not any("10^" in label or "times" in label for label in labels), labels


def test_a_truncated_jpeg_stops_the_build_before_clip_loads(own_classes, tmp_path, capsys, monkeypatch):
    """One line naming the photo and the flag that skips it, written before any model is loaded."""
    from mmovod.clip import factory

    photos = with_photo(own_classes, tmp_path, truncated_jpeg)
    loaded = []
    monkeypatch.setattr(factory, "load_clip", lambda *a, **k: loaded.append(a) or pytest.fail("CLIP loaded"))
    assert build(own_classes, tmp_path / "out", photos=photos) == 2
    [line] = capsys.readouterr().err.strip().splitlines()[-1:]
    assert line.startswith(f"build_classifiers.py: error: {photos / 'traffic cone/bad.jpg'}: cannot read image: ")
    assert line.endswith("a photo of 'traffic cone' (pass --skip-bad to skip unreadable images)")
    assert loaded == [] and not (tmp_path / "out").exists()
