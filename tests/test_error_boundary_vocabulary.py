"""The error boundary for what names the classes and where outputs go: documents nested too deeply for
any decoder (every JSON/YAML reader), class names that are one name in another Unicode form, mistyped
fields of a COCO --exemplar-ann file, and output or cache folders that cannot be written, found before
CLIP is loaded or anything is encoded."""
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmovod.demo.world_models import tiny_clip_config_path
from tests.tiers import quick_once
from tests.error_cases import GOOD, write_classifier
from tools import (build_classifiers, check_classifier, download_assets, eval_classifiers, get_lvis_cat_info,
                   remove_lvis_rare, sample_exemplars)

DEPTH = 100_000
DEEP_LIST = b"[" * DEPTH + b"]" * DEPTH
CATS = [{"id": 1, "name": "aerosol can", "synonyms": ["aerosol can"], "synset": "aerosol.n.02", "frequency": "c",
         "image_count": 1, "instance_count": 1, "def": "a can"}]


def deep_object(key: str) -> bytes:
    return b'{"' + key.encode() + b'": ' + DEEP_LIST + b"}"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("vocab")
    w = {"root": root}
    w["clip_config"] = root / "tiny_clip.json"
    shutil.copy(tiny_clip_config_path(), w["clip_config"])
    w["clip"] = ["--clip_model", str(w["clip_config"]), "--pretrained", "none", "--device", "cpu"]
    for name, colour in (("cone", (250, 120, 0)), ("hard hat", (240, 230, 0))):
        (root / "photos" / name).mkdir(parents=True)
        Image.new("RGB", (40, 30), colour).save(root / "photos" / name / "1.jpg")
    w["vocab"] = root / "vocab.txt"
    w["vocab"].write_text("cone\nhard hat\n")
    w["lvis"] = root / "lvis.json"
    w["lvis"].write_text(json.dumps({"images": [], "annotations": [], "categories": CATS}))
    w["exemplar_dict"] = root / "exemplar_dict.json"
    w["exemplar_dict"].write_text(json.dumps({"aerosol.n.02": [{"dataset": "imagenet21k", "file_name": "x.JPEG"}]}))
    w["classifier"] = write_classifier(root / "text.npy", np.eye(1, 512), {"clip_model": str(w["clip_config"]),
                                       "pretrained": "none", "embed_dim": 512}, ids=[1])
    return w


def build_argv(w, out, *extra, vocab=None):
    return ["--vocab", str(vocab or w["vocab"]), "--exemplars", str(w["root"] / "photos"), "--out-dir", str(out),
            "--num-augs", "1", "--nw", "0", *w["clip"], *(str(e) for e in extra)]


def eval_argv(w, out, *extra, ann=None):
    return ["--classifiers", str(w["classifier"]), "--ann", str(ann or w["lvis"]), "--img-dir", str(w["root"]),
            "--out-dir", str(out), "--nw", "0", "--device", "cpu", *(str(e) for e in extra)]


def output(tmp_path, name="x"):
    (tmp_path / "out").mkdir(exist_ok=True)
    return tmp_path / "out" / name


# --- documents nested too deeply ------------------------------------------------------------------

# (case, file name, its bytes, the tool's argv given (world, bad file, output), the output, needle)
DEEP = [
    ("build-vocab-json", "v.json", DEEP_LIST, lambda w, f, o: build_argv(w, o, vocab=f), "not valid JSON (nested too deeply)"),
    ("build-vocab-yaml", "v.yaml", DEEP_LIST, lambda w, f, o: build_argv(w, o, vocab=f), "not valid YAML (nested too deeply)"),
    ("build-vocab-annotations", "v.json", deep_object("categories"), lambda w, f, o: build_argv(w, o, vocab=f),
     "not valid JSON"),
    ("build-descriptions", "d.json", DEEP_LIST, lambda w, f, o: build_argv(w, o, "--descriptions", f), "not valid JSON"),
    ("build-exemplar-ann", "a.json", deep_object("images"),
     lambda w, f, o: build_argv(w, o, "--exemplar-ann", f), "not valid JSON"),
    ("check-vocab-yaml", "v.yaml", DEEP_LIST, lambda w, f, o: [str(w["classifier"]), "--vocab", str(f)],
     "not valid YAML (nested too deeply)"),
    ("eval-ann", "ann.json", deep_object("categories"), lambda w, f, o: eval_argv(w, o, ann=f), "not valid JSON"),
    ("eval-ann-annotations", "ann.json", b'{"categories": [], "images": [], "annotations": [{"x": ' + DEEP_LIST + b"}]}",
     lambda w, f, o: eval_argv(w, o, ann=f), "not valid JSON"),
    ("download-manifest", "m.json", deep_object("assets"),
     lambda w, f, o: ["--manifest", str(f), "--dest", str(o.parent)], "not an asset manifest"),
    ("remove-lvis-rare", "ann.json", deep_object("categories"), lambda w, f, o: ["--ann", str(f), "--out", str(o)],
     "not valid JSON"),
    ("get-lvis-cat-info", "ann.json", deep_object("categories"), lambda w, f, o: ["--ann", str(f), "--out", str(o)],
     "not valid JSON"),
    ("sample-exemplars", "ex.json", b'{"aerosol.n.02": ' + DEEP_LIST + b"}",
     lambda w, f, o: ["--lvis-ann-path", str(w["lvis"]), "--exemplar-dict-path", str(f), "-K", "1", "--out-path", str(o)],
     "not valid JSON"),
]
DEEP_TOOLS = {"build": build_classifiers, "check": check_classifier, "eval": eval_classifiers,
              "download": download_assets, "remove": remove_lvis_rare, "get": get_lvis_cat_info,
              "sample": sample_exemplars}


@pytest.mark.parametrize("case, name, data, argv, needle", quick_once(DEEP, [c[0] for c in DEEP]))
def test_documents_nested_too_deeply(world, tmp_path, bad_input, case, name, data, argv, needle):
    bad = tmp_path / name
    bad.write_bytes(data)
    out = output(tmp_path)
    tool = DEEP_TOOLS[case.split("-")[0]]
    existing = None if tool in (build_classifiers, eval_classifiers, download_assets, check_classifier) else GOOD
    bad_input(tool.main, argv(world, bad, out), out, f"{bad}: {needle}", existing=existing)


# --- one name in two Unicode forms ----------------------------------------------------------------

COMPOSED, DECOMPOSED = "caf\u00e9", "cafe\u0301"
UNICODE_VOCABS = [  # (case, file name, text, the second class as the error names it)
    ("nfc-nfd-text", "v.txt", f"{COMPOSED}\nhard hat\n{DECOMPOSED}\n", DECOMPOSED),
    ("full-width-text", "v.txt", "cone\n\uff43\uff4f\uff4e\uff45\n", "\uff43\uff4f\uff4e\uff45"),
    ("ligature-yaml", "v.yaml", "- \ufb01sh\n- fish\n", "fish"),
    ("nfc-nfd-json", "v.json", json.dumps([COMPOSED, DECOMPOSED]), DECOMPOSED),
    ("nfc-nfd-annotations", "v.json", json.dumps({"categories": [{"id": 1, "name": COMPOSED},
                                                                 {"id": 2, "name": DECOMPOSED}]}), DECOMPOSED),
]


@pytest.mark.parametrize("case, name, text, second", quick_once(UNICODE_VOCABS, [c[0] for c in UNICODE_VOCABS]))
def test_class_names_equal_in_another_unicode_form_are_duplicates(world, tmp_path, capsys, bad_input,
                                                                 case, name, text, second):
    vocab = tmp_path / name
    vocab.write_text(text, encoding="utf-8")
    out = output(tmp_path)
    needle = f"class {second!r} repeats"
    bad_input(build_classifiers.main, build_argv(world, out, vocab=vocab), out, needle)
    assert check_classifier.main([str(world["classifier"]), "--vocab", str(vocab)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and str(vocab) in err[0], err


# --- mistyped fields of --exemplar-ann --------------------------------------------------------------

def coco(**edits):
    doc = {"images": [{"id": 1, "file_name": "cone/1.jpg"}],
           "categories": [{"id": 7, "name": "cone"}],
           "annotations": [{"id": 3, "image_id": 1, "category_id": 7, "bbox": [1, 1, 20, 20]}]}
    for key, fields in edits.items():
        doc[key][0].update(fields)
    return doc


EXEMPLAR_ANN = [  # (case, document, needle)
    ("numeric-file-name", coco(images={"file_name": 5}), "images #0: 'file_name' must be a non-empty string, found 5"),
    ("list-image-id", coco(images={"id": [1]}), "images #0: 'id' must be an integer (or string) id, found [1]"),
    ("object-category-id", coco(annotations={"category_id": {"id": 7}}),
     "annotations #0: 'category_id' must be an integer (or string) id"),
    ("list-annotation-image-id", coco(annotations={"image_id": [1]}), "annotations #0: 'image_id' must be an integer"),
    ("object-category-key", coco(categories={"id": {"a": 1}}), "categories #0: 'id' must be an integer"),
    ("numeric-category-name", coco(categories={"name": 7}), "categories #0: 'name' must be a non-empty string"),
    ("bool-id", coco(images={"id": True}), "images #0: 'id' must be an integer"),
]


@pytest.mark.parametrize("case, doc, needle", quick_once(EXEMPLAR_ANN, [c[0] for c in EXEMPLAR_ANN]))
def test_exemplar_ann_field_types(world, tmp_path, bad_input, case, doc, needle):
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps(doc))
    out = output(tmp_path)
    bad_input(build_classifiers.main, build_argv(world, out, "--exemplar-ann", ann), out, f"{ann}: {needle}")


@pytest.mark.slow
def test_a_good_exemplar_ann_builds(world, tmp_path):
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps(coco()))
    assert build_classifiers.main(build_argv(world, tmp_path / "out", "--exemplar-ann", ann)) == 0
    exemplars = json.loads((tmp_path / "out/exemplars.json").read_text())
    assert [[r["file_name"] for r in records] for records in exemplars] == [[str(world["root"] / "photos/cone/1.jpg")], []]


# --- output folders that cannot be written ----------------------------------------------------------

def deny_writes_into(monkeypatch, folder):
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, *a, **k: False if Path(path) == folder and mode & os.W_OK
                        else real(path, mode, *a, **k))


def fail_mkdir(monkeypatch, folder):
    """Creating `folder` fails as on a read-only mount (root passes permission checks, so it is faked)."""
    real = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if self == folder:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, **kwargs)
    monkeypatch.setattr(Path, "mkdir", mkdir)


@pytest.fixture
def no_clip(monkeypatch):
    """Loading CLIP fails the test: the checks must come before it."""
    import mmovod.clip.factory
    import mmovod.evaluation.crop_encoding

    def refuse(*args, **kwargs):
        raise AssertionError("CLIP was loaded before the output folder was checked")
    for module in (mmovod.clip.factory, mmovod.evaluation.crop_encoding):
        monkeypatch.setattr(module, "load_clip", refuse)


@pytest.mark.parametrize("exists", [False, True], ids=["new", "existing"])
def test_build_checks_out_dir_is_writable_before_loading_clip(world, tmp_path, monkeypatch, bad_input, no_clip, exists):
    out = output(tmp_path, "built")
    if exists:
        out.mkdir()
    deny_writes_into(monkeypatch, out if exists else out.parent)
    bad_input(build_classifiers.main, build_argv(world, out), out, "cannot write into")


@pytest.mark.slow
def test_build_out_dir_mkdir_failure_is_one_line(world, tmp_path, monkeypatch, bad_input):
    out = output(tmp_path, "built")
    fail_mkdir(monkeypatch, out)
    bad_input(build_classifiers.main, build_argv(world, out), out, f"{out}: cannot write (Permission denied)")


@pytest.mark.parametrize("where", ["cache-dir", "default-cache", "out-dir"])
def test_eval_checks_its_folders_are_writable_before_encoding(world, tmp_path, monkeypatch, bad_input, no_clip, where):
    out = output(tmp_path, "eval")
    cache = tmp_path / "caches"
    cache.mkdir()
    extra = ["--cache-dir", cache / "c"] if where == "cache-dir" else []
    if where == "default-cache":
        out.mkdir()
    deny_writes_into(monkeypatch, {"cache-dir": cache, "default-cache": out, "out-dir": out.parent}[where])
    bad_input(eval_classifiers.main, eval_argv(world, out, *extra, ann=demo_ann(world, tmp_path)), out,
              "cannot write into")


def test_eval_crop_cache_mkdir_failure_is_one_line(world, tmp_path, monkeypatch, bad_input):
    out = output(tmp_path, "eval")
    cache = tmp_path / "caches"
    fail_mkdir(monkeypatch, cache)
    bad_input(eval_classifiers.main, eval_argv(world, out, "--cache-dir", cache, ann=demo_ann(world, tmp_path)),
              out, f"{cache}: cannot write (Permission denied)")


def demo_ann(world, tmp_path):
    """An annotation file with one box of the world's class, on one of its photos."""
    ann = tmp_path / "boxes.json"
    ann.write_text(json.dumps({
        "images": [{"id": 1, "file_name": "photos/cone/1.jpg", "width": 40, "height": 30}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 39, 29], "area": 1131}],
        "categories": CATS}))
    return ann
