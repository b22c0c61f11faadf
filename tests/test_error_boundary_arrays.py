"""The error boundary for arrays and their descriptions: every `.npy` a tool reads (classifiers, fusion
inputs, downloaded arrays, feature-cache and crop-cache shards), every sidecar field, every cache
index.json. Each bad file ends in one line naming it (exit 2, nothing written), never in a traceback
or a terabyte allocation; a resumable cache re-encodes a shard it cannot read."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mmovod.io import arrays
from mmovod.io.errors import InputError
from tests.tiers import quick_once
from tests.error_cases import BAD_NPY, BAD_NPY_IDS, GOOD, edit_json, eval_argv, eval_world, write_classifier
from tests.http_server import FileServer, Route
from tools import (cache_clip_features, check_classifier, download_assets, eval_classifiers, eval_visual_aggregator,
                   export_classifier, norm_feat_sum_norm, train_visual_aggregator)


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_clip):
    return eval_world(tmp_path_factory.mktemp("arrays"), tiny_clip.checkpoint)


def one_line(capsys, code, needle, prefix=""):
    """Exit 2 and, after any progress bars, exactly one line: `prefix` then words holding `needle`."""
    err = capsys.readouterr().err.strip().splitlines()
    lines = [line for line in err if line.strip() and "%|" not in line]
    assert code == 2 and len(lines) == 1 and lines[0].startswith(prefix) and needle in lines[0], err
    assert not any("Traceback" in line for line in err), err
    return lines[0]


def out_file(tmp_path):
    (tmp_path / "out").mkdir()
    return tmp_path / "out" / "x.json"


# --- the shared reader ----------------------------------------------------------------------------

@pytest.mark.parametrize("name, make, needle", quick_once(BAD_NPY, BAD_NPY_IDS))
def test_the_npy_reader_checks_the_header_against_the_file_before_reading(tmp_path, monkeypatch, name, make, needle):
    path = tmp_path / "x.npy"
    path.write_bytes(make(np.ones((3, 512), np.float32)))
    allocations = []
    real_empty = np.empty
    monkeypatch.setattr(np, "empty", lambda *a, **k: allocations.append(a) or real_empty(*a, **k))
    for mmap in (False, True):
        with pytest.raises(InputError) as caught:
            arrays.load_npy(path, mmap=mmap)
        message = str(caught.value)
        assert message.startswith(f"{path}: ") and needle in message and "\n" not in message
    assert allocations == []  # nothing was allocated for the claimed shape


def test_the_npy_reader_reads_good_arrays_whole_or_mapped(tmp_path):
    path = tmp_path / "x.npy"
    for array in (np.arange(24, dtype=np.float16).reshape(2, 3, 4), np.zeros((0, 5), np.float32),
                  np.asfortranarray(np.arange(6.0).reshape(2, 3)), np.arange(4, dtype=">i8")):
        np.save(path, array)
        for mmap in (False, True):
            got = arrays.load_npy(path, mmap=mmap)
            assert got.dtype == array.dtype and np.array_equal(got, array)
    np.save(path, np.ones(3, np.float32))
    with pytest.raises(InputError, match="expected a 2-D array"):
        arrays.load_matrix(path)


# --- every tool that reads a .npy -----------------------------------------------------------------

@pytest.mark.parametrize("name, make, needle", quick_once(BAD_NPY, BAD_NPY_IDS))
def test_check_classifier(world, tmp_path, capsys, name, make, needle):
    path = tmp_path / "x.npy"
    path.write_bytes(make(world["rows"]))
    one_line(capsys, check_classifier.main([str(path)]), needle, prefix=f"{path}: ")


@pytest.mark.parametrize("name, make, needle", quick_once(BAD_NPY, BAD_NPY_IDS))
def test_norm_feat_sum_norm(world, tmp_path, bad_input, name, make, needle):
    bad = tmp_path / "bad.npy"
    bad.write_bytes(make(world["rows"]))
    out = out_file(tmp_path).with_suffix(".npy")
    bad_input(norm_feat_sum_norm.main, ["--feat1-path", str(world["text"]), "--feat2-path", str(bad),
                                        "--out-path", str(out)], out, needle, existing=GOOD)


@pytest.mark.parametrize("name, make, needle", quick_once(BAD_NPY, BAD_NPY_IDS))
def test_eval_classifiers_classifier(world, tmp_path, bad_input, name, make, needle):
    bad = tmp_path / "bad.npy"
    bad.write_bytes(make(world["rows"]))
    shutil.copy(str(world["text"]) + ".json", str(bad) + ".json")
    out = tmp_path / "eval"
    bad_input(eval_classifiers.main, eval_argv(world, out, bad), out, needle)


@pytest.mark.parametrize("tool", [train_visual_aggregator, eval_visual_aggregator])
@pytest.mark.parametrize("name, make, needle", quick_once(BAD_NPY, BAD_NPY_IDS))
def test_feature_cache_shard(world, tmp_path, bad_input, tool, name, make, needle):
    cache = tmp_path / "cache"
    shutil.copytree(world["cache"], cache)
    shard = cache / "shard-00000.npy"
    shard.write_bytes(make(np.load(shard)))
    out = out_file(tmp_path)
    if tool is train_visual_aggregator:
        out = out.with_name("run")
        argv = ["--cache", cache, "--out", out, "--steps", "2", "--batch-classes", "2", "--k-max", "2",
                "--num-layers", "1", "--device", "cpu"]
    else:
        argv = ["--cache", cache, "--load-path", world["aggregator"], "--num-layers", "1", "--out-path", out,
                "--ks", "1", "--queries", "1", "--trials", "1", "--device", "cpu"]
    bad_input(tool.main, [str(a) for a in argv], out, f"{shard}: ")


@pytest.mark.parametrize("name, make, needle", quick_once(BAD_NPY, BAD_NPY_IDS))
def test_download_assets_array(world, tmp_path, capsys, name, make, needle):
    with FileServer() as server:
        server.routes["/x.npy"] = Route(make(world["rows"]))
        manifest = tmp_path / "manifest.json"
        manifest.write_text(json.dumps({"version": 1, "assets": [
            {"name": "x", "group": "metadata", "url": server.url + "/x.npy", "path": "x.npy",
             "check": {"kind": "array", "shape": [3, 512], "dtypes": ["float32"]}}]}))
        (tmp_path / "dest").mkdir()
        code = download_assets.main(["--manifest", str(manifest), "--dest", str(tmp_path / "dest"),
                                     "--retry-wait", "0", "--timeout", "5"])
    one_line(capsys, code, needle, prefix=f"download_assets.py: error: {server.url}/x.npy: ")
    assert list((tmp_path / "dest").iterdir()) == []


@pytest.fixture(scope="module")
def crop_cache(world, tmp_path_factory):
    """A finished crop-embedding cache of the world's boxes."""
    root = tmp_path_factory.mktemp("crop_cache")
    assert eval_classifiers.main(eval_argv(world, root / "first", extra=["--cache-dir", str(root / "cache")])) == 0
    return next((root / "cache").iterdir())


@pytest.mark.parametrize("name, make, needle", quick_once(BAD_NPY, BAD_NPY_IDS))
def test_eval_classifiers_crop_cache_shard(world, crop_cache, tmp_path, bad_input, name, make, needle):
    cache = tmp_path / "cache"
    shutil.copytree(crop_cache, cache / crop_cache.name)
    shard = cache / crop_cache.name / "shard-00000.npy"
    shard.write_bytes(make(np.load(crop_cache / "shard-00000.npy")))
    out = tmp_path / "eval"
    bad_input(eval_classifiers.main, eval_argv(world, out, extra=["--cache-dir", str(cache)]), out,
              f"{shard}: corrupt shard")


@pytest.fixture(scope="module")
def feature_cache_run(world, tmp_path_factory):
    """cache_clip_features over a class-folder tree of the world's images, finished once."""
    root = tmp_path_factory.mktemp("cache_run")
    for c in ("a", "b"):
        for i in (1, 2):
            (root / "tree" / c).mkdir(parents=True, exist_ok=True)
            shutil.copy(world["root"] / f"{i}.jpg", root / "tree" / c / f"{i}.jpg")
    argv = ["--image-root", str(root / "tree"), "--out", str(root / "cache"), "--nw", "0", "--min-images", "1",
            "--shard-size", "2", "--clip_model", str(world["clip_config"]), "--pretrained", str(world["weights"]),
            "--device", "cpu"]
    assert cache_clip_features.main(argv) == 0
    return root / "cache", argv


@pytest.mark.parametrize("name, make, needle", quick_once(BAD_NPY, BAD_NPY_IDS))
def test_cache_clip_features_reencodes_a_shard_it_cannot_read(feature_cache_run, tmp_path, name, make, needle):
    finished, argv = feature_cache_run
    cache = tmp_path / "cache"
    shutil.copytree(finished, cache)
    good = np.load(finished / "shard-00001.npy")
    (cache / "shard-00001.npy").write_bytes(make(good))
    assert cache_clip_features.main([*argv[:3], str(cache), *argv[4:]]) == 0
    assert np.array_equal(np.load(cache / "shard-00001.npy"), good)


# --- sidecar fields -------------------------------------------------------------------------------

SIDECAR_FIELDS = [  # (field, a value of the wrong type, words of the error)
    ("clip_model", 512, "'clip_model' must be a string"),
    ("pretrained", ["openai"], "'pretrained' must be a string"),
    ("embed_dim", "512", "'embed_dim' must be an integer"),
    ("embed_dim", True, "'embed_dim' must be an integer"),
    ("dtype", 4, "'dtype' must be a string"),
    ("normalized", "yes", "'normalized' must be true or false"),
    ("command", {"argv": 1}, "'command' must be a string"),
    ("category_ids", ["1", 2, 3], "'category_ids' must be a list of 3 integer ids"),
    ("category_ids", [1, 1.5, [3]], "'category_ids' must be a list of 3 integer ids"),
    ("class_names", [1, 2, 3], "'class_names' must be a list of 3 strings"),
    ("class_names", ["cone", " ", "digger"], "'class_names' row 1 is ' ', expected a name on one line"),
    ("class_names", ["cone", "hard\nhat", "digger"], "'class_names' row 1 is 'hard\\nhat', expected a name on one line"),
    ("category_ids", [1, 2, 1], "'category_ids' has id 1 on rows 0 and 2"),
    ("details", {"classes_without_exemplars": "cone"}, "'classes_without_exemplars' must be a list of strings"),
    ("details", {"num_layers": "four"}, "'num_layers' must be an integer"),
    ("details", {"sources": ["a.npy"]}, "'sources' must be an object"),
    ("shape", [3.0, 512], "'shape' must be [classes, dim]"),
    ("schema_version", "1", "schema_version '1' is not supported"),
]
SIDECAR_IDS = [f"{f}-{type(v).__name__}" for f, v, _ in SIDECAR_FIELDS]


def mistyped(world, tmp_path, field, value):
    path = tmp_path / "bad.npy"
    shutil.copy(world["text"], path)
    shutil.copy(str(world["text"]) + ".json", str(path) + ".json")

    def edit(doc):
        return {**doc, "details": {**doc["details"], **value}} if field == "details" else {**doc, field: value}
    edit_json(Path(str(path) + ".json"), edit)
    return path


@pytest.mark.parametrize("field, value, needle", quick_once(SIDECAR_FIELDS, SIDECAR_IDS))
def test_sidecar_field_types_check_classifier(world, tmp_path, capsys, field, value, needle):
    path = mistyped(world, tmp_path, field, value)
    one_line(capsys, check_classifier.main([str(path), "--clip_model", "ViT-B/32"]), needle, prefix=f"{path}.json: ")


@pytest.mark.parametrize("field, value, needle", quick_once(SIDECAR_FIELDS, SIDECAR_IDS))
def test_sidecar_field_types_eval_classifiers(world, tmp_path, bad_input, field, value, needle):
    path = mistyped(world, tmp_path, field, value)
    out = tmp_path / "eval"
    bad_input(eval_classifiers.main, eval_argv(world, out, path), out, needle)


@pytest.mark.parametrize("field, value, needle", quick_once(SIDECAR_FIELDS, SIDECAR_IDS))
def test_sidecar_field_types_norm_feat_sum_norm(world, tmp_path, bad_input, field, value, needle):
    path = mistyped(world, tmp_path, field, value)
    out = out_file(tmp_path).with_suffix(".npy")
    bad_input(norm_feat_sum_norm.main, ["--feat1-path", str(world["text"]), "--feat2-path", str(path),
                                        "--out-path", str(out)], out, needle, existing=GOOD)


@pytest.mark.parametrize("field, value, needle", quick_once(SIDECAR_FIELDS, SIDECAR_IDS))
def test_sidecar_field_types_export_classifier(world, tmp_path, bad_input, field, value, needle):
    path = mistyped(world, tmp_path, field, value)
    out = out_file(tmp_path).with_suffix(".npy")
    bad_input(export_classifier.main, [str(path), "--format", "detic", "--out-path", str(out)], out, needle,
              existing=GOOD)


# --- classifiers without rows ---------------------------------------------------------------------

def test_a_classifier_without_rows_is_refused(world, tmp_path, capsys, bad_input):
    empty = write_classifier(tmp_path / "empty.npy", np.zeros((0, 512)), world["clip"], ids=[], names=[])
    one_line(capsys, check_classifier.main([str(empty)]), "no rows (0 classes)", prefix=f"{empty}: ")
    bare = tmp_path / "bare.npy"
    np.save(bare, np.zeros((4, 0), np.float32))
    one_line(capsys, check_classifier.main([str(bare)]), "rows of 0 numbers", prefix=f"{bare}: ")
    out = tmp_path / "eval"
    bad_input(eval_classifiers.main, eval_argv(world, out, empty), out, "empty.npy: no rows (0 classes)")


# --- cache index.json -----------------------------------------------------------------------------

def without(doc, key):
    return {k: v for k, v in doc.items() if k != key}


INDEX_EDITS = [  # (name, edit of the decoded index, words of the error)
    ("a-list", lambda doc: [doc], "not an mmovod feature-cache index"),
    ("a-number", lambda doc: 7, "not an mmovod feature-cache index"),
    ("missing-num-rows", lambda doc: without(doc, "num_rows"), "cache index field 'num_rows' missing"),
    ("missing-num-shards", lambda doc: without(doc, "num_shards"), "cache index field 'num_shards' missing"),
    ("mistyped-views", lambda doc: {**doc, "num_views": [1]}, "cache index field 'num_views' has a wrong value"),
    ("mistyped-clip", lambda doc: {**doc, "clip": "ViT-B/32"}, "cache index field 'clip' has a wrong value"),
    ("negative-rows", lambda doc: {**doc, "num_rows": -3}, "cache index field 'num_rows' has a wrong value"),
]


@pytest.mark.parametrize("name, edit, needle", quick_once(INDEX_EDITS, [n for n, _, _ in INDEX_EDITS]))
def test_crop_cache_index(world, crop_cache, tmp_path, bad_input, name, edit, needle):
    cache = tmp_path / "cache"
    shutil.copytree(crop_cache, cache / crop_cache.name)
    index = edit_json(cache / crop_cache.name / "index.json", edit)
    out = tmp_path / "eval"
    bad_input(eval_classifiers.main, eval_argv(world, out, extra=["--cache-dir", str(cache)]), out,
              f"{index}: {needle}")


@pytest.mark.parametrize("name, edit, needle", quick_once(INDEX_EDITS, [n for n, _, _ in INDEX_EDITS]))
def test_feature_cache_index_on_resume(feature_cache_run, tmp_path, bad_input, name, edit, needle):
    finished, argv = feature_cache_run
    cache = tmp_path / "out" / "cache"
    shutil.copytree(finished, cache)
    index = edit_json(cache / "index.json", edit)
    bad_input(cache_clip_features.main, [*argv[:3], str(cache), *argv[4:]], cache, f"{index}: {needle}",
              resumable=True)
