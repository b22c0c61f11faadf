"""tools/build_classifiers.py end to end on generated photos with the tiny CLIP: equal to the separate tools,
text-only rows for classes without exemplars, resumable, one-line errors, the report in a real browser."""
import dataclasses
import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

import mmovod.vocabulary.build as build_module
from mmovod.classifiers.kinds import KINDS, VISION_DETAILS, ClassifierKind
from mmovod.classifiers.sidecar import read_sidecar
from mmovod.classifiers.sidecar_files import LOCATION_DETAILS
from mmovod.descriptions.recipe import clean_sample, describe_prompt
from tests.fakes import KEY, fake_text
from tests.own_classes import CLASSES, DESCRIPTIONS, VOCAB, build, photo, truncated_jpeg, with_photo
from tests.tiers import quick_once
from tools import build_classifiers, dump_clip_features, dump_clip_features_lvis_sentences, \
    generate_vision_classifier_agg, get_exemplars_tta, norm_feat_sum_norm


@pytest.mark.slow
def test_one_command_equals_the_separate_tools(own_classes, tmp_path, capsys):
    root, out = own_classes["root"], tmp_path / "out"
    assert build(own_classes, out, "--descriptions", root / "descriptions.json", "--load-path", root / "agg.pth",
                 "--num-layers", "1", vocab=root / "lvis.json") == 0  # an LVIS-format vocabulary: category ids
    captured = capsys.readouterr()
    exemplars = sum(n for *_, n in CLASSES)
    assert f"encoded {2 * exemplars} distinct views for 2 view settings of {exemplars} exemplars " \
           f"({4 * exemplars} without sharing)" in captured.err  # whole images: the two settings share their views
    assert "exemplar folders matching no class: 'boats'" in captured.out
    ref = tmp_path / "ref"
    ref.mkdir()
    ann, ex_list = str(root / "lvis.json"), str(out / "exemplars.json")
    assert dump_clip_features.main(["--ann", ann, "--out_path", str(ref / "text.npy"), *own_classes["clip"]]) == 0
    assert dump_clip_features_lvis_sentences.main(["--descriptions-path", str(root / "descriptions.json"), "--ann-path",
                                                   ann, "--out-path", str(ref / "desc.npy"), *own_classes["clip"]]) == 0
    assert get_exemplars_tta.main(["--ann-path", ex_list, "--output-path", str(ref / "avg.npy"), *own_classes["views"],
                                   *own_classes["clip"]]) == 0
    assert generate_vision_classifier_agg.main(["--exemplar-list", ex_list, "--out-path", str(ref / "agg.npy"), "--tta",
                                                "--load-path", str(root / "agg.pth"), "--num-layers", "1",
                                                *own_classes["views"], *own_classes["clip"]]) == 0
    for vision in ("avg", "agg"):
        assert norm_feat_sum_norm.main(["--feat1-path", str(ref / "desc.npy"), "--feat2-path", str(ref / f"{vision}.npy"),
                                        "--out-path", str(ref / f"mm_{vision}.npy")]) == 0
    pairs = {"text": "text", "descriptions": "desc", "vision-average": "avg", "vision-aggregated": "agg",
             "multi-modal-average": "mm_avg", "multi-modal-aggregated": "mm_agg"}
    for ours, theirs in pairs.items():
        got, want = np.load(out / f"{ours}.npy"), np.load(ref / f"{theirs}.npy")
        assert got.shape == want.shape == (3, 512) and got.dtype == want.dtype, ours
        tol = 2e-3 if got.dtype == np.float16 else 2e-5
        np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32), rtol=tol, atol=tol, err_msg=ours)
        side = json.loads((out / f"{ours}.npy.json").read_text())
        assert side["class_names"] == ["hard hat", "traffic cone", "excavator"] and side["shape"] == [3, 512]
        assert side["category_ids"] == [1, 2, 3]
        assert side["space"] == {"vision-aggregated": "aggregator", "multi-modal-aggregated": "mixed"}.get(ours, "clip")
    doc = json.loads((out / "vocabulary.json").read_text())
    assert [c["name"] for c in doc["classes"]] == ["hard hat", "traffic cone", "excavator"]
    hat = doc["classes"][0]
    assert hat["text"] == {"sentences": ["a hard hat"]} and hat["descriptions"]["sentences"] == DESCRIPTIONS["hard hat"]
    assert [e["image"] for e in hat["exemplars"]] == [str(root / f"photos/Hard_Hat/{i}.jpg") for i in range(3)]
    assert hat["multi_modal"] == "descriptions + vision" and doc["unmatched_exemplar_folders"] == ["boats"]
    assert "MODEL.ROI_BOX_HEAD.ZEROSHOT_WEIGHT_PATH " + str(out / "multi-modal-aggregated.npy") + \
           " MODEL.ROI_HEADS.NUM_CLASSES 3 MODEL.ROI_BOX_HEAD.ZEROSHOT_WEIGHT_DIM 512" in captured.out


@pytest.mark.slow
def test_synonym_averaging_and_prompt_flags_match_dump_clip_features(own_classes, tmp_path):
    out = tmp_path / "out"
    assert build(own_classes, out, "--avg_synonyms", "--prompt", "photo") == 0
    ref = tmp_path / "ref.npy"
    assert dump_clip_features.main(["--ann", str(own_classes["root"] / "lvis.json"), "--out_path", str(ref), "--avg_synonyms",
                                    "--prompt", "photo", *own_classes["clip"]]) == 0
    np.testing.assert_allclose(np.load(out / "text.npy"), np.load(ref), rtol=2e-5, atol=2e-5)
    doc = json.loads((out / "vocabulary.json").read_text())
    assert doc["classes"][0]["text"]["sentences"] == ["a photo of a hard hat", "a photo of a safety helmet"]


def unit(rows):
    rows = rows.astype(np.float64)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.mark.slow
def test_classes_without_exemplars_get_text_only_rows(own_classes, tmp_path, capsys, bad_input):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text(VOCAB + "wheelbarrow\n")
    out = tmp_path / "out"
    assert build(own_classes, out, vocab=vocab) == 0
    assert "classes without exemplars (multi-modal rows from their text, its vision direction estimated from the " \
           "classes with exemplars): wheelbarrow" in capsys.readouterr().out
    text, avg, mm = (np.load(out / f"{n}.npy") for n in ("text", "vision-average", "multi-modal-average"))
    assert not avg[3].any() and avg[:3].all(axis=1).all()
    expected = unit(unit(text) + unit(np.where(avg.any(axis=1, keepdims=True), avg, 1)))
    gap = (unit(avg[:3]) - unit(text[:3])).mean(axis=0)  # the mean text-to-photo gap of the classes with photos
    expected[3] = unit((unit(text)[3] + unit((unit(text)[3] + gap)[None])[0])[None])[0]
    np.testing.assert_allclose(mm, expected, rtol=1e-5, atol=1e-6)
    assert json.loads((out / "vision-average.npy.json").read_text())["details"]["classes_without_exemplars"] == \
        ["wheelbarrow"]
    doc = json.loads((out / "vocabulary.json").read_text())
    assert doc["classes_without_exemplars"] == ["wheelbarrow"]
    assert doc["classes"][3]["multi_modal"].startswith("text only (no exemplars)") and doc["classes"][3]["exemplars"] == []
    argv = ["--vocab", str(vocab), "--exemplars", str(own_classes["root"] / "photos"), "--out-dir", str(tmp_path / "strict"),
            "--require-exemplars", *own_classes["clip"]]
    bad_input(build_classifiers.main, argv, tmp_path / "strict", "1 of 4 classes have no exemplars, and --require-exemplars")


def computed(capsys):
    line = next(li for li in capsys.readouterr().out.splitlines() if "computed:" in li)
    return line.split("computed: ")[1].split("; reused")[0]


@pytest.mark.slow
def test_rerun_reuses_and_a_change_redoes_only_what_depends_on_it(own_classes, tmp_path, capsys):
    photos = tmp_path / "photos"
    shutil.copytree(own_classes["root"] / "photos", photos)
    out = tmp_path / "out"
    assert build(own_classes, out, photos=photos) == 0
    assert computed(capsys) == "text, vision-average, multi-modal-average"
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.is_file()}
    text = np.load(out / "text.npy")
    assert build(own_classes, out, photos=photos) == 0
    assert computed(capsys) == "nothing"
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.is_file()} == stamps
    assert build(own_classes, out, "--prompt", "photo", photos=photos) == 0
    assert computed(capsys) == "text, multi-modal-average"
    assert (out / "vision-average.npy").stat().st_mtime_ns == stamps["vision-average.npy"]
    photo(photos / "digger/1.jpg", 1234, (50, 50))
    assert build(own_classes, out, "--prompt", "photo", photos=photos) == 0
    assert computed(capsys) == "vision-average, multi-modal-average"
    assert build(own_classes, out, photos=photos) == 0
    assert computed(capsys) == "text, multi-modal-average"
    np.testing.assert_array_equal(np.load(out / "text.npy"), text)
    # views made in the other order, or a run that may skip images, are other rows: never reused
    for flag in (["--view-order", "original"], ["--skip-bad"]):
        assert build(own_classes, out, *flag, photos=photos) == 0
        assert computed(capsys) == "vision-average, multi-modal-average"
    assert read_sidecar(out / "vision-average.npy").details["view_order"] == "fast"


@pytest.mark.slow
def test_ctrl_c_while_writing_names_the_classifiers_kept_and_the_rerun_reuses_them(own_classes, tmp_path, monkeypatch,
                                                                                  capsys):
    assert build(own_classes, tmp_path / "ref") == 0
    out, real, saves = tmp_path / "out", build_module.save_classifier, []

    def ctrl_c_at_the_second(*args, **kwargs):
        saves.append(args[0])
        if len(saves) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)
    monkeypatch.setattr(build_module, "save_classifier", ctrl_c_at_the_second)
    capsys.readouterr()
    assert build(own_classes, out) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"build_classifiers.py: interrupted; text.npy (1 of 3 classifiers, each with its sidecar) is written to {out}; "
        "run the same command again to reuse them and finish the build")
    assert sorted(p.name for p in out.iterdir()) == ["exemplars.json", "text.npy", "text.npy.json"]
    monkeypatch.setattr(build_module, "save_classifier", real)
    assert build(own_classes, out) == 0
    assert computed(capsys) == "vision-average, multi-modal-average"
    for name in ("text", "vision-average", "multi-modal-average"):
        np.testing.assert_array_equal(np.load(out / f"{name}.npy"), np.load(tmp_path / "ref" / f"{name}.npy"))


@pytest.mark.slow
def test_ctrl_c_before_any_classifier_is_written_keeps_nothing(own_classes, tmp_path, monkeypatch, capsys):
    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(build_module, "save_classifier", ctrl_c)
    argv = ["--vocab", str(own_classes["root"] / "vocab.txt"), "--out-dir", str(tmp_path / "out"), *own_classes["clip"]]  # text only
    assert build_classifiers.main(argv) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == "build_classifiers.py: interrupted; no output was written"
    assert not [p for p in tmp_path.joinpath("out").rglob("*") if p.is_file()]


def coco_boxes(root, box):
    doc = {"images": [{"id": 1, "file_name": "Hard_Hat/0.jpg"}], "categories": [{"id": 1, "name": "hard hat"}],
           "annotations": [{"id": 5, "image_id": 1, "category_id": 1, "bbox": box}]}
    path = root / "boxes.json"
    path.write_text(json.dumps(doc))
    return path


BAD_CASES = {
    "missing_vocab": (lambda d, t: ["--vocab", t / "nope.txt"], "nope.txt: vocabulary file not found"),
    "empty_vocab": (lambda d, t: ["--vocab", write(t / "v.txt", "# nothing\n")], "the vocabulary has no classes"),
    "duplicate_vocab": (lambda d, t: ["--vocab", write(t / "v.txt", "cone\nhard hat\nHard_Hat\n")],
                        "line 3: class 'Hard_Hat' repeats 'hard hat' (line 2)"),
    "missing_folder": (lambda d, t: ["--exemplars", t / "nowhere"], "nowhere: exemplar folder not found"),
    "undecodable_image": (lambda d, t: ["--exemplars", with_photo(d, t, lambda p: p.write_bytes(b"\xff\xd8 junk"))],
                          "bad.jpg: cannot read image"),
    "truncated_image": (lambda d, t: ["--exemplars", with_photo(d, t, truncated_jpeg)], "bad.jpg: cannot read image"),
    "bbox_outside": (lambda d, t: ["--exemplar-ann", coco_boxes(t, [30, 10, 40, 20])],
                     "annotation 5: bbox [30.0, 10.0, 40.0, 20.0] lies outside its image"),
    "descriptions_missing": (lambda d, t: ["--descriptions", write(t / "d.json", json.dumps({"hard hat": ["A hat."]}))],
                             "no descriptions for 2 of 3 classes: 'traffic cone', 'excavator'"),
    "aggregator_size": (lambda d, t: ["--load-path", d["root"] / "agg256.pth", "--num-layers", "1"],
                        "the aggregator takes 256-d embeddings but"),
    "export_aggregated": (lambda d, t: ["--load-path", d["root"] / "agg.pth", "--num-layers", "1", "--export",
                                        "vision-aggregated"], "--export vision-aggregated: a vision-aggregated classifier has rows from the visual "
                                                            "aggregator, whose outputs are not in CLIP's space"),
}


def write(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize("case", quick_once(list(BAD_CASES)))
def test_bad_input_is_one_line_and_writes_nothing(own_classes, tmp_path, bad_input, case):
    make, needle = BAD_CASES[case]
    extra = [str(a) for a in make(own_classes, tmp_path)]
    if case == "bbox_outside":
        extra += ["--exemplars", str(tmp_path / "photos")]
        shutil.copytree(own_classes["root"] / "photos", tmp_path / "photos")
    argv = ["--vocab", str(own_classes["root"] / "vocab.txt"), "--exemplars", str(own_classes["root"] / "photos"),
            "--out-dir", str(tmp_path / "out"), *own_classes["clip"], *own_classes["views"]]
    argv += extra  # later flags win
    bad_input(build_classifiers.main, argv, tmp_path / "out", needle)


@pytest.mark.slow
def test_skip_bad_lists_the_image_and_earlier_outputs_survive_a_failed_run(own_classes, tmp_path, capsys):
    photos = with_photo(own_classes, tmp_path, truncated_jpeg)
    out = tmp_path / "out"
    assert build(own_classes, out, "--skip-bad", photos=photos) == 0
    doc = json.loads((out / "vocabulary.json").read_text())
    [skipped] = doc["classes"][1]["skipped_images"]
    assert skipped["path"] == str(photos / "traffic cone/bad.jpg")
    assert skipped["reason"].startswith("cannot read image: image file is truncated")
    assert [e["image"] for e in doc["classes"][1]["exemplars"]] == [str(photos / f"traffic cone/{i}.jpg")
                                                                   for i in range(2)]  # skipped: not an exemplar
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    capsys.readouterr()
    # vision must be redone (more views) and, without --skip-bad, the image stops the run after the text is encoded
    assert build(own_classes, out, "--prompt", "photo", "--num-augs", "3", photos=photos) == 2
    assert "bad.jpg: cannot read image" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


@pytest.mark.slow
def test_export_writes_normalised_clip_space_rows(own_classes, tmp_path, capsys, monkeypatch):
    from mmovod.handoff import formats

    # the tiny CLIP is 512-d like the released YOLO-World models; pretend those take 768-d, and the build says once
    # (for two exported kinds) that its rows fit only a detector built for their width
    monkeypatch.setitem(formats.FORMATS, "yolo-world", dataclasses.replace(formats.FORMATS["yolo-world"], detector_dim=768))
    out = tmp_path / "out"
    assert build(own_classes, out, "--export", "text", "multi-modal-average") == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note: ")]
    assert notes == ["note: the rows are 512-d; the released YOLO-World models take 768-d (CLIP ViT-B/32): this "
                     "file fits only a detector built for 512-d embeddings (--embed-dim 768 refuses such rows)"]
    for kind in ("text", "multi-modal-average"):
        got = np.load(out / "export" / f"{kind}.npy")
        np.testing.assert_allclose(got, unit(np.load(out / f"{kind}.npy")), rtol=1e-6, atol=1e-7)
        assert json.loads((out / "export" / f"{kind}.npy.json").read_text())["normalized"] is True
    assert json.loads((out / "export/text.class_texts.json").read_text()) == [["hard hat"], ["traffic cone"], ["excavator"]]
    # the same rows for Ultralytics, from the classifiers already built
    assert build(own_classes, out, "--export", "text", "--export-format", "ultralytics") == 0
    saved = torch.load(out / "export/text.pt", weights_only=True)
    np.testing.assert_allclose(saved["txt_feats"][0].numpy(), unit(np.load(out / "text.npy")), rtol=1e-6, atol=1e-7)


@pytest.mark.slow
def test_a_new_kind_is_one_module_and_one_row(own_classes, tmp_path, monkeypatch, capsys):
    """A kind added to the table (its rows function in tests/references.py) is planned, computed from the
    shared exemplar views, written with its sidecar, reused on a re-run and exportable, with no other change."""
    out = tmp_path / "out"
    assert build(own_classes, out, "--export", "vision-max") == 2  # not a kind yet
    assert "invalid choice: 'vision-max'" in capsys.readouterr().err
    monkeypatch.setitem(KINDS, "vision-max", ClassifierKind(
        "vision-max", "clip", "float32", ("exemplars",), "element-wise maximum of K x num_views view embeddings",
        VISION_DETAILS, rows="tests.references:max_view_rows"))
    assert build(own_classes, out, "--export", "vision-max") == 0
    assert "computed: text, vision-average, multi-modal-average, vision-max;" in capsys.readouterr().out
    rows, mean = np.load(out / "vision-max.npy"), np.load(out / "vision-average.npy")
    side = read_sidecar(out / "vision-max.npy")
    assert side.kind == "vision-max" and side.space == "clip" and rows.dtype == np.float32
    assert set(side.details) - {"fingerprint", "class_synonyms", "exemplar_list", *LOCATION_DETAILS} == set(VISION_DETAILS)
    assert (rows >= mean - 1e-5).all() and (rows > mean + 1e-3).any()  # a maximum over the views, not the mean
    np.testing.assert_allclose(np.load(out / "export/vision-max.npy"), unit(rows), rtol=1e-6, atol=1e-7)
    assert build(own_classes, out) == 0
    assert "computed: nothing" in capsys.readouterr().out


@pytest.fixture
def llm_server(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    return server


@pytest.mark.slow
def test_generated_descriptions_are_cached_in_the_output_folder(own_classes, tmp_path, llm_server):
    out = tmp_path / "out"
    args = ["--descriptions", "generate", "--openai-model", "chat-test", "--base-url", llm_server.base_url]
    assert build(own_classes, out, *args) == 0
    got = json.loads((out / "descriptions_chat-test.json").read_text())
    names = [name for name, *_ in CLASSES]
    assert got == {n: [clean_sample(fake_text(describe_prompt(n), 10, i)) for i in range(10)] for n in names}
    assert len(llm_server.requests) == 3
    assert build(own_classes, out, *args) == 0
    assert len(llm_server.requests) == 3  # the file covers every class: no request, and nothing recomputed
    side = json.loads((out / "descriptions.npy.json").read_text())
    assert side["details"]["sentences_per_class"] == [10, 10, 10]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_report_renders_in_headless_chromium(own_classes, tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text(VOCAB + "wheelbarrow\n")
    out = tmp_path / "out"
    assert build(own_classes, out, "--report", vocab=vocab) == 0
    page = out / "report/index.html"
    html = page.read_text()
    sheets = sorted((out / "report/sheets").iterdir())
    assert [p.name for p in sheets] == ["0000_hard-hat.jpg", "0001_traffic-cone.jpg", "0002_excavator.jpg"]
    assert all(f"src='sheets/{p.name}'" in html for p in sheets)
    assert "Classes without exemplars (1; their multi-modal rows come from their text, its vision direction " \
           "estimated from the other classes): wheelbarrow" in html
    assert "Handed to the detector: <b>multi-modal-average</b>, best leave-one-out top-1" in html
    assert html.count("nearest: ") == 4 and "<script" not in html
    with Image.open(sheets[0]) as sheet:  # three pairs of 128-px tiles: crop and TTA view
        assert sheet.size == (3 * (2 * 128 + 6) + 4 * 12, 128 + 3 * 6 + 6)
    shot = tmp_path / "shot.png"
    env = {**os.environ, "HOME": str(tmp_path)}
    result = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
                             "--v=0", f"--screenshot={shot}", "--window-size=1000,2400", page.as_uri()],
                            capture_output=True, text=True, timeout=120, env=env)
    assert shot.is_file(), result.stderr
    assert not [line for line in result.stderr.splitlines() if "CONSOLE" in line], result.stderr
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    colours = len(np.unique(pixels.reshape(-1, 3), axis=0))
    assert pixels.std() > 20 and colours > 1000, (pixels.std(), colours)  # text and the noisy photos are drawn


@pytest.mark.slow
def test_the_demo_vocabulary_builds_as_make_demo_runs_it(own_classes, tmp_path, capsys):
    from mmovod.demo.dataset import write_demo_custom

    counts = write_demo_custom(tmp_path, seed=0)
    assert counts == {"custom_classes": 5, "custom_images": 16}
    out = tmp_path / "custom/classifiers"
    argv = ["--vocab", str(tmp_path / "custom/vocab.txt"), "--exemplars", str(tmp_path / "custom/exemplars"),
            "--out-dir", str(out), "--load-path", str(own_classes["root"] / "agg.pth"), "--num-layers", "1", "--export",
            "multi-modal-average", *own_classes["clip"], *own_classes["views"]]
    assert build_classifiers.main(argv) == 0
    printed = capsys.readouterr().out
    assert "the classes with exemplars): traffic cone" in printed
    doc = json.loads((out / "vocabulary.json").read_text())
    assert [len(c["exemplars"]) for c in doc["classes"]] == [4, 4, 4, 4, 0]
    assert doc["classes"][3]["synonyms"] == ["carpet runner", "runner rug"] and doc["unmatched_exemplar_folders"] == []
