"""tools/eval_classifiers.py end to end on the demo dataset (tiny CLIP): crops, cached embeddings,
scoring, outputs and every bad input of the contract."""
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from mmovod.features import builder as cache_builder
from mmovod.classifiers.sidecar import make_sidecar, save_classifier
from mmovod.clip.factory import load_clip
from mmovod.evaluation import crop_cache, crop_encoding
from mmovod.evaluation import evaluate as eval_run
from mmovod.evaluation.crop_cache import read_view_embeddings
from mmovod.evaluation.crops_from_annotations import select_boxes
from tests.eval_fixtures import args, run_ok
from tools import eval_classifiers as tool


def naive_selection(doc, min_area=1024):
    """(category id, file name, bbox) of every non-crowd box with area > min_area, by category then file order."""
    urls = {i["id"]: "/".join(i["coco_url"].split("/")[-2:]) for i in doc["images"]}
    boxes = [(a["category_id"], urls[a["image_id"]], a["bbox"]) for a in doc["annotations"]
             if a.get("area", a["bbox"][2] * a["bbox"][3]) > min_area and not a.get("iscrowd")]
    return sorted(boxes, key=lambda b: b[0])  # stable: file order within a category


def naive_square_box(bbox, width, height, context=0.0):
    x, y, w, h = math.floor(bbox[0]), math.floor(bbox[1]), math.floor(bbox[2]) + 1, math.floor(bbox[3]) + 1
    side = max(w, h) * (1 + context)
    cx, cy = x + w / 2, y + h / 2
    return (int(max(0, cx - side / 2)), int(max(0, cy - side / 2)),
            int(min(width, cx + side / 2)), int(min(height, cy + side / 2)))


@pytest.mark.slow
def test_crops_and_embeddings_equal_a_direct_per_crop_computation(eval_demo, tmp_path):
    run_ok(eval_demo, tmp_path / "e")
    crops = select_boxes(eval_demo["root"] / "lvis/lvis_v1_val.json", eval_demo["root"] / "coco")
    expected = naive_selection(eval_demo["doc"])
    got = [(r["category_id"], r["file_name"], r["bbox"]) for r in crops.records()]
    assert got == expected and len(got) > 20
    cache = next((tmp_path / "e/crop_cache").iterdir())
    cached = read_view_embeddings(cache, crops)[:, 0]
    bundle = load_clip(eval_demo["clip"]["clip_model"], eval_demo["clip"]["pretrained"], "cpu")
    with torch.inference_mode():
        for row, (_, file_name, bbox) in enumerate(expected):
            with Image.open(eval_demo["root"] / "coco" / file_name) as image:
                image = ImageOps.exif_transpose(image).convert("RGB")
                crop = image.crop(naive_square_box(bbox, image.width, image.height))
            direct = bundle.model.encode_image(bundle.preprocess(crop)[None])[0].numpy()
            np.testing.assert_allclose(cached[row], direct, rtol=2e-3, atol=2e-3)  # cached as float16


@pytest.mark.slow
def test_scores_metrics_and_outputs(eval_demo, tmp_path, capsys):
    doc = run_ok(eval_demo, tmp_path / "e", ("text", "agg"), "--report")
    printed = capsys.readouterr().out.splitlines()
    assert printed[1].split() == ["classifier", "kind", "scored", "crops", "top-1", "top-5", "mean", "acc", "mAP",
                                  "mAP_r", "mAP_c", "mAP_f"]
    assert printed[-2].startswith("every classifier: ")  # both miss the same classes: one line
    text_row = next(line.split() for line in printed if line.startswith("text "))
    assert text_row[4] == f"{100 * doc['classifiers'][0]['overall']['top1']:.1f}"
    # rows not in CLIP's space are scored raw and through a map fitted on other classes; nothing else is
    assert [(r["name"], r["scored"]) for r in doc["classifiers"]] == [("text", "raw"), ("agg", "raw"),
                                                                      ("agg (mapped)", "mapped")]
    crops = select_boxes(eval_demo["root"] / "lvis/lvis_v1_val.json", eval_demo["root"] / "coco")
    views = read_view_embeddings(Path(doc["cache"]), crops)
    labels = [eval_demo["ids"].index(c) for c in crops.crop_category_ids()]
    for result in doc["classifiers"]:
        rows = np.load(eval_demo["cls"][result["name"].split(" ")[0]])
        q = views[:, 0]  # the raw crop embedding, for every classifier: no crop passes through the aggregator
        cos = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (rows / np.linalg.norm(rows, axis=1, keepdims=True)).T
        top1 = np.mean(cos.argmax(1) == labels)
        if result["scored"] == "raw":
            assert result["overall"]["top1"] == pytest.approx(top1, abs=1e-9)
        assert result["overall"]["crops"] == len(labels) and result["classes"] == len(eval_demo["ids"])
        assert set(result["by_frequency"]) == {"r", "c", "f"}
        assert len(result["per_class"]) == len(eval_demo["ids"]) and len(result["confused_pairs"]) <= 20
        without = {c["id"] for c in result["coverage"]["classifier_classes_without_crops"]}
        assert without == set(eval_demo["ids"]) - set(crops.crop_category_ids().tolist())
        assert all(c["ap"] is None for c in result["per_class"] if c["id"] in without)
        assert f"{len(without)} of its {len(eval_demo['ids'])} classes have no crop in --ann" in printed[-2]
    out = tmp_path / "e"
    for name in ("eval_results.md", "eval_map_top1_by_frequency.png", "eval_ap_vs_frequency.png", "report.html"):
        assert (out / name).stat().st_size > 0, name
    assert Image.open(out / "eval_ap_vs_frequency.png").format == "PNG"
    md = (out / "eval_results.md").read_text()
    assert "| text | text | raw |" in md and "| agg | vision-aggregated | raw |" in md
    assert "| agg (mapped) | vision-aggregated | mapped |" in md


@pytest.mark.slow
def test_one_encoding_pass_shared_by_classifiers_and_runs(eval_demo, tmp_path, monkeypatch):
    calls = []
    original = crop_encoding.cache_features
    monkeypatch.setattr(crop_encoding, "cache_features", lambda *a, **k: calls.append(1) or original(*a, **k))
    cache = ["--cache-dir", str(tmp_path / "cache")]
    one = run_ok(eval_demo, tmp_path / "one", ("text",), *cache)
    four = run_ok(eval_demo, tmp_path / "four", ("text", "avg", "mm", "agg"), *cache)
    assert len(calls) == 1  # the second run found the cache
    assert one["classifiers"][0]["per_class"] == four["classifiers"][0]["per_class"]
    assert len(list((tmp_path / "cache").iterdir())) == 1
    other = run_ok(eval_demo, tmp_path / "views", ("text",), "--views", "2", *cache)  # other crop settings: new cache
    assert len(calls) == 2 and other["cache"] != one["cache"]


@pytest.mark.slow
def test_interrupted_encoding_resumes(eval_demo, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(crop_cache, "SHARD_SIZE", 8)
    reference = run_ok(eval_demo, tmp_path / "ref")
    real = cache_builder.encode_items
    encoded = []

    def interrupted(bundle, items, *a, **k):
        if len(encoded) == 2:
            raise KeyboardInterrupt
        encoded.append(items)
        return real(bundle, items, *a, **k)

    monkeypatch.setattr(cache_builder, "encode_items", interrupted)
    assert tool.main(args(eval_demo, tmp_path / "run")) == 130
    assert not (tmp_path / "run/eval_results.json").exists()
    cache, num_shards = next((tmp_path / "run/crop_cache").iterdir()), -(-reference["crops"]["crops"] // 8)
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"eval_classifiers.py: interrupted; 2 finished shards of {num_shards} are kept in {cache}; "
        "run the same command again to resume from there")
    monkeypatch.setattr(cache_builder, "encode_items", lambda *a, **k: encoded.append(a[1]) or real(*a, **k))
    resumed = run_ok(eval_demo, tmp_path / "run")
    assert len(encoded) == num_shards  # 2 before the interruption, the rest after: none twice
    assert resumed["classifiers"] == reference["classifiers"]


@pytest.mark.slow
def test_ctrl_c_after_the_encoding_names_the_cache_kept_and_the_rerun_encodes_nothing(eval_demo, tmp_path, monkeypatch,
                                                                                     capsys):
    reference = run_ok(eval_demo, tmp_path / "ref")
    real, calls = eval_run.crop_metrics, []

    def ctrl_c_while_scoring(*a, **k):
        calls.append(1)
        raise KeyboardInterrupt
    monkeypatch.setattr(eval_run, "crop_metrics", ctrl_c_while_scoring)
    assert tool.main(args(eval_demo, tmp_path / "run")) == 130
    cache = next((tmp_path / "run/crop_cache").iterdir())
    shards = sorted(p.name for p in cache.glob("shard-*.npy"))
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"eval_classifiers.py: interrupted; {len(shards)} finished shard{'s' if len(shards) > 1 else ''} of {len(shards)} "
        f"{'are' if len(shards) > 1 else 'is'} kept in {cache}; "
        "run the same command again to resume from there")
    assert calls and not (tmp_path / "run/eval_results.json").exists()
    monkeypatch.setattr(eval_run, "crop_metrics", real)
    monkeypatch.setattr(crop_encoding, "cache_features", lambda *a, **k: pytest.fail("encoded again"))
    assert run_ok(eval_demo, tmp_path / "run")["classifiers"] == reference["classifiers"]


@pytest.mark.slow
@pytest.mark.parametrize("spoil", [
    Path.unlink,
    lambda p: p.write_bytes(p.read_bytes()[:200]),  # truncated: found when decoding, after the image exists
    lambda p: p.write_bytes(b""),
], ids=["missing", "truncated", "empty"])
def test_skip_bad_lists_missing_and_unreadable_images(eval_demo, tmp_path, spoil):
    img_dir = tmp_path / "coco"
    shutil.copytree(eval_demo["root"] / "coco", img_dir)
    gone = sorted((img_dir / "val2017").iterdir())[0]
    spoil(gone)
    argv = args(eval_demo, tmp_path / "e") + ["--img-dir", str(img_dir)]
    assert tool.main(argv) == 2 and not (tmp_path / "e" / "eval_results.json").exists()
    assert tool.main(argv + ["--skip-bad"]) == 0
    doc = json.loads((tmp_path / "e/eval_results.json").read_text())
    assert doc["crops"]["missing_images"] == [f"val2017/{gone.name}"]
    assert doc["crops"]["crops"] == len([b for b in naive_selection(eval_demo["doc"]) if not b[1].endswith(gone.name)])


def test_coco_format_and_per_class_choice(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "img").mkdir()
    images, anns = [], []
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (80, 100, 3), dtype=np.uint8)).save(tmp_path / "img" / f"{i}.jpg")
        images.append({"id": i, "file_name": f"{i}.jpg"})
    for k in range(60):
        anns.append({"id": k, "image_id": k % 4, "category_id": 1 + k % 3, "bbox": [1, 2, 40, 30],
                     "iscrowd": int(k == 5), "area": 1200})
    doc = {"images": images, "annotations": anns, "categories": [{"id": c, "name": f"c{c}"} for c in (1, 2, 3, 4)]}
    ann = tmp_path / "coco.json"
    ann.write_text(json.dumps(doc))
    crops = select_boxes(ann, tmp_path / "img", max_per_class=7, seed=3)
    assert [len(c.records) for c in crops.classes] == [7, 7, 7] and crops.counts["crowd"] == 1
    assert all((tmp_path / "img" / r["file_name"]).is_file() for r in crops.records())
    again = select_boxes(ann, tmp_path / "img", max_per_class=7, seed=3)
    other = select_boxes(ann, tmp_path / "img", max_per_class=7, seed=4)
    assert again.records() == crops.records() and other.records() != crops.records()
    ids = [r["id"] for r in crops.records()]
    assert ids == sorted(ids, key=lambda k: (1 + k % 3, k))  # file order within each class
    # a class's choice does not depend on the other classes
    fewer = dict(doc, annotations=[a for a in anns if a["category_id"] != 2])
    (tmp_path / "fewer.json").write_text(json.dumps(fewer))
    alone = select_boxes(tmp_path / "fewer.json", tmp_path / "img", max_per_class=7, seed=3)
    assert alone.classes[0].records == crops.classes[0].records
    assert len(select_boxes(ann, tmp_path / "img", max_per_class=0).records()) == 59


# ---- bad input: one line, exit 2, nothing written -------------------------------------------------

def write_classifier(path, rows, clip, ids=None, kind="text"):
    rows = np.asarray(rows, dtype=np.float32)
    save_classifier(path, rows, make_sidecar(rows, kind, clip, category_ids=ids))
    return path


def test_bad_classifiers(eval_demo, tmp_path, bad_input):
    out = tmp_path / "e"
    n = len(eval_demo["ids"])
    good = np.random.default_rng(1).standard_normal((n, 512))
    other_clip = write_classifier(tmp_path / "b32.npy", good, {"clip_model": "ViT-B/32", "pretrained": "openai",
                                                               "embed_dim": 512}, eval_demo["ids"])
    bad_input(tool.main, args(eval_demo, out, ("text", other_clip)), out, "ViT-B/32 (openai)")
    small = write_classifier(tmp_path / "small.npy", good[:, :256], eval_demo["clip"], eval_demo["ids"])
    bad_input(tool.main, args(eval_demo, out, ("text", small)), out, "rows are 256-d")
    nan = good.copy()
    nan[3, 7] = np.nan
    bad_input(tool.main, args(eval_demo, out, (write_classifier(tmp_path / "nan.npy", nan, eval_demo["clip"], eval_demo["ids"]),)),
              out, "nan.npy: row 3")
    bad_input(tool.main, args(eval_demo, out, (write_classifier(tmp_path / "zero.npy", 0 * good, eval_demo["clip"]),)),
              out, "zero.npy: every row is all zeros")
    seven = write_classifier(tmp_path / "seven.npy", good[:7], eval_demo["clip"])
    bad_input(tool.main, args(eval_demo, out, (seven,)), out, "7 rows match no class list")
    bare = tmp_path / "bare.npy"
    np.save(bare, good.astype(np.float32))
    bad_input(tool.main, args(eval_demo, out, (bare,)), out, "bare.npy: no sidecar names the CLIP")



def test_bad_annotations_and_images(eval_demo, tmp_path, bad_input):
    out = tmp_path / "e"
    no_boxes = dict(eval_demo["doc"], annotations=[{k: v for k, v in a.items() if k != "bbox"} for a in eval_demo["doc"]["annotations"]])
    path = tmp_path / "nobox.json"
    path.write_text(json.dumps(no_boxes))
    argv = args(eval_demo, out)
    argv[argv.index("--ann") + 1] = str(path)
    bad_input(tool.main, argv, out, "nobox.json: no annotation has a bounding box")
    argv = args(eval_demo, out) + ["--img-dir", str(tmp_path)]
    first = sorted({b[1] for b in naive_selection(eval_demo["doc"])})[0]
    bad_input(tool.main, argv, out, f"{tmp_path / first}: image not found")


@pytest.mark.slow
def test_corrupt_cache_shard_is_named_then_rebuilt(eval_demo, tmp_path, bad_input):
    cache = ["--cache-dir", str(tmp_path / "cache")]
    before = run_ok(eval_demo, tmp_path / "first", ("text",), *cache)
    shard = Path(before["cache"]) / "shard-00000.npy"
    shard.write_bytes(b"not an npy file")
    out = tmp_path / "second"
    bad_input(tool.main, args(eval_demo, out, ("text",), *cache), out, f"{shard}: corrupt shard")
    array = np.full((before["crops"]["crops"], 1, 512), np.nan, dtype=np.float16)
    np.save(shard, array)
    bad_input(tool.main, args(eval_demo, out, ("text",), *cache), out, f"{shard}: corrupt shard (non-finite")
    after = run_ok(eval_demo, out, ("text",), *cache, "--rebuild-cache")
    assert after["classifiers"] == before["classifiers"]


# ---- the HTML report in a headless browser -----------------------------------------------------

def chromium_shot(page: Path, shot: Path) -> str:
    import subprocess

    proc = subprocess.run([shutil.which("chromium"), "--headless", "--no-sandbox", "--disable-gpu",
                           f"--screenshot={shot}", "--window-size=1200,1600", "--virtual-time-budget=3000",
                           "--enable-logging=stderr", "--v=0", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    return proc.stderr


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed")
def test_html_report_renders_without_console_errors(eval_demo, tmp_path):
    out = tmp_path / "e"
    # an exemplar classifier whose sidecar names its exemplar list: the report shows the exemplars too
    urls = {i["id"]: "/".join(i["coco_url"].split("/")[-2:]) for i in eval_demo["doc"]["images"]}
    anns = eval_demo["doc"]["annotations"]
    exemplars = [[{"dataset": "lvis", "file_name": urls[a["image_id"]], "bbox": a["bbox"], "category_id": cid}
                  for a in (anns[k % len(anns)], anns[(k + 1) % len(anns)])] for k, cid in enumerate(eval_demo["ids"])]
    (tmp_path / "exemplars.json").write_text(json.dumps(exemplars))
    rows = np.load(eval_demo["cls"]["avg"])
    avg = tmp_path / "avg_ex.npy"
    save_classifier(avg, rows, make_sidecar(rows, "vision-average", eval_demo["clip"], category_ids=eval_demo["ids"], details={
        "exemplar_list": str(tmp_path / "exemplars.json"), "image_roots": {"lvis": str(eval_demo["root"] / "coco")},
        "context": 0.4}))
    doc = run_ok(eval_demo, out, ("text", avg), "--report", "--worst-classes", "3")
    page = out / "report.html"
    text = page.read_text()
    section = text[text.index("avg_ex: worst classes"):]
    assert section.count("class='exemplar'") == 3 * 2 and "class='exemplar'" not in text[:text.index("avg_ex: worst")]
    worst = sorted((c for c in doc["classifiers"][1]["per_class"] if c["ap"] is not None), key=lambda c: c["ap"])[:3]
    heads = [section.index(f"'>{c['name']} (") for c in worst]  # names, never ids
    assert heads == sorted(heads) and "(id " not in section
    assert "http://" not in text and "https://" not in text  # no external resources
    thumbs = sorted((out / "report_files").glob("*.jpg"))
    assert thumbs and all(f"report_files/{t.name}" in text for t in thumbs)
    log = chromium_shot(page, tmp_path / "shot.png")
    assert not [line for line in log.splitlines() if ":CONSOLE" in line], log
    shot = np.asarray(Image.open(tmp_path / "shot.png").convert("L"))
    assert shot.std() > 10  # not blank
    thumbs[0].unlink()  # the page's own check reports a broken image: the console test can fail
    log = chromium_shot(page, tmp_path / "broken.png")
    assert any(":CONSOLE" in line and thumbs[0].name in line for line in log.splitlines()), log


@pytest.mark.slow
def test_sidecars_old_and_new(eval_demo, tmp_path):
    """Files from before the sidecar schema: a fusion recorded its CLIP and category ids only inside its
    sources' sidecars, an aggregated classifier is recognised by its 'aggregator' key. Files of today's
    fusion tool: a fusion of CLIP and aggregator rows (space 'mixed') is scored raw, as a detector sees it,
    and mapped."""
    from mmovod.classifiers.fusion import fuse_classifier_files

    rng = np.random.default_rng(5)
    ids = list(reversed(eval_demo["ids"]))  # rows in another order: category_ids must be followed
    old = {}
    for name, dtype, extra in (("text", np.float32, {"prompt": "a {}"}),
                               ("agg", np.float16, {"aggregator": str(eval_demo["aggregator"]), "num_layers": 4})):
        rows = rng.standard_normal((len(ids), 512)).astype(dtype)
        old[name] = tmp_path / f"{name}.npy"
        np.save(old[name], rows)
        side = {"shape": list(rows.shape), "dtype": str(rows.dtype), **eval_demo["clip"], **extra, "category_ids": ids}
        (tmp_path / f"{name}.npy.json").write_text(json.dumps(side))
    fused = np.load(old["text"]) / 2
    np.save(tmp_path / "fused.npy", fused)
    (tmp_path / "fused.npy.json").write_text(json.dumps({
        "shape": list(fused.shape), "dtype": "float32", "kind": "multi-modal fusion", "normalisation": "l2(l2(feat1) + l2(feat2))",
        "sources": {key: {"path": str(old[name]), "sidecar": json.loads((tmp_path / f"{name}.npy.json").read_text())}
                    for key, name in (("feat1", "text"), ("feat2", "agg"))}}))
    new_sidecars = tmp_path / "new"
    new_sidecars.mkdir()
    for name in ("text", "agg"):  # today's tools: the one schema
        shutil.copy(eval_demo["cls"][name], new_sidecars / f"{name}.npy")
        shutil.copy(str(eval_demo["cls"][name]) + ".json", new_sidecars / f"{name}.npy.json")
    fuse_classifier_files(new_sidecars / "text.npy", new_sidecars / "agg.npy", new_sidecars / "mixed.npy")
    doc = run_ok(eval_demo, tmp_path / "e", (old["text"], tmp_path / "fused.npy", old["agg"], new_sidecars / "mixed.npy"))
    kinds = {r["name"]: (r["kind"], r["space"]) for r in doc["classifiers"]}
    assert kinds == {"text": ("text", "clip"), "fused": ("multi-modal", "clip"), "agg": ("vision-aggregated", "aggregator"),
                     "agg (mapped)": ("vision-aggregated", "aggregator"), "mixed": ("multi-modal", "mixed"),
                     "mixed (mapped)": ("multi-modal", "mixed")}
    assert [c["id"] for c in doc["classifiers"][1]["per_class"]] == ids
    reference = run_ok(eval_demo, tmp_path / "ref", (old["text"],), "--cache-dir", str(tmp_path / "e/crop_cache"))
    assert doc["classifiers"][0]["per_class"] == reference["classifiers"][0]["per_class"]
    crops = select_boxes(eval_demo["root"] / "lvis/lvis_v1_val.json", eval_demo["root"] / "coco")
    q = read_view_embeddings(Path(doc["cache"]), crops)[:, 0]
    rows = np.load(new_sidecars / "mixed.npy")
    cos = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (rows / np.linalg.norm(rows, axis=1, keepdims=True)).T
    labels = [eval_demo["ids"].index(c) for c in crops.crop_category_ids()]
    assert doc["classifiers"][4]["overall"]["top1"] == pytest.approx(np.mean(cos.argmax(1) == labels))


@pytest.mark.slow
def test_released_files_without_sidecars(eval_demo, tmp_path):
    """The authors' classifiers have no sidecar: --clip_model names their CLIP, --aggregator-space marks the
    aggregated one; results equal those of the same arrays with sidecars."""
    bare = {}
    for name in ("text", "agg"):
        bare[name] = tmp_path / f"{name}.npy"
        np.save(bare[name], np.load(eval_demo["cls"][name]))
    flags = ["--clip_model", eval_demo["clip"]["clip_model"], "--pretrained", eval_demo["clip"]["pretrained"]]
    got = run_ok(eval_demo, tmp_path / "bare", (bare["text"], bare["agg"]), *flags, "--aggregator-space", str(bare["agg"]))
    want = run_ok(eval_demo, tmp_path / "side", ("text", "agg"))
    assert [r["space"] for r in got["classifiers"]] == ["clip", "aggregator", "aggregator"]
    for g, w in zip(got["classifiers"], want["classifiers"]):
        assert g["per_class"] == w["per_class"] and g["overall"] == w["overall"]
    assert tool.main(args(eval_demo, tmp_path / "x", ("text",), "--aggregator-space", str(bare["agg"]))) == 2


@pytest.mark.slow
def test_warm_cache_needs_neither_torch_nor_open_clip(eval_demo, tmp_path):
    """With the crop embeddings cached, a CLIP-space evaluation imports neither torch nor open_clip
    (seconds of start-up and hundreds of MB), so LVIS-val scale stays within seconds."""
    import subprocess
    import sys

    run_ok(eval_demo, tmp_path / "e", ("text",))
    code = ("import sys; from tools import eval_classifiers as t; "
            f"assert t.main({args(eval_demo, tmp_path / 'e', ('text',))!r}) == 0; "
            "print(sorted(m for m in ('torch', 'open_clip') if m in sys.modules))")
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"
