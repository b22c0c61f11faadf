import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mmovod.clip.factory import load_clip
from mmovod.demo.world_models import save_random_checkpoint, tiny_clip_config_path
from mmovod.clip.crops import load_exemplar_crop
from mmovod.features.feature_cache import FeatureCache
from bench.original_views import make_view, view_transform
from tools import cache_clip_features


ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_clip):
    """The session's tiny CLIP and a class-folder tree (4 classes x 5 images, one empty class)."""
    base = tmp_path_factory.mktemp("cache")
    ckpt = tiny_clip.checkpoint
    rng = np.random.default_rng(0)
    tree = base / "tree"
    for c in range(4):
        folder = tree / f"n0000{c}"
        folder.mkdir(parents=True)
        for i in range(5):
            Image.fromarray(rng.integers(0, 256, (40 + 4 * i, 50, 3), dtype=np.uint8)).save(folder / f"n0000{c}_{i}.JPEG")
    (tree / "n00009").mkdir()
    (tree / "n00000" / "notes.txt").write_text("not an image")
    return {"base": base, "tree": tree, "ckpt": ckpt, "clip": tiny_clip.flags}


def cache_args(tiny, out, *extra):
    return ["--image-root", str(tiny["tree"]), "--out", str(out), "--views", "2", "--tta", "--shard-size", "6",
            "--nw", "0", "--batch-size", "8", *tiny["clip"], *extra]


def shard_bytes(folder):
    return {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir()) if not p.name.startswith(".")}


@pytest.mark.slow
def test_views_match_a_naive_one_image_at_a_time_encoding(tiny, tmp_path, capsys):
    out = tmp_path / "c"
    assert cache_clip_features.main(cache_args(tiny, out, "--view-order", "original")) == 0
    assert "1 class has fewer than 2 images: n00009 (0)" in capsys.readouterr().err
    cache = FeatureCache(out)
    assert cache.classes == ["n00000", "n00001", "n00002", "n00003"]
    assert list(cache.class_sizes) == [5] * 4 and cache.views == 2 and len(cache.shards) == 4
    assert (out / "items.txt").read_text().splitlines()[6] == "imagenet21k:n00001/n00001_1.JPEG"
    bundle = load_clip(str(tiny_clip_config_path()), str(tiny["ckpt"]), "cpu")
    transform = view_transform(bundle.preprocess, bundle.image_size, tta=True)
    for c, e, v in [(0, 0, 0), (1, 1, 1), (3, 4, 0)]:
        image = Image.open(tiny["tree"] / f"n0000{c}" / f"n0000{c}_{e}.JPEG").convert("RGB")
        with torch.inference_mode():
            expected = bundle.model.encode_image(make_view(image, transform, 0, c, e, v)[None])[0].numpy()
        got = cache.gather(np.array([5 * c + e]), np.array([v]))[0].astype(np.float32)
        np.testing.assert_allclose(got, expected, rtol=2e-3, atol=2e-3)


@pytest.mark.slow
def test_torchrun_two_ranks_write_the_same_bytes_as_one_process(tiny, tmp_path):
    single, multi = tmp_path / "single", tmp_path / "multi"
    assert cache_clip_features.main(cache_args(tiny, single)) == 0
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "tools" / "cache_clip_features.py"), *cache_args(tiny, multi)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "2 shards encoded (rank 1 of 2)" in proc.stderr
    a, b = shard_bytes(single), shard_bytes(multi)
    assert sorted(a) == sorted(b) == ["index.json", "items.txt"] + [f"shard-0000{i}.npy" for i in range(4)]
    for name in a:
        assert a[name] == b[name], name


@pytest.mark.slow
def test_rerun_skips_finished_shards_and_redoes_a_missing_one(tiny, tmp_path, capsys):
    out = tmp_path / "c"
    assert cache_clip_features.main(cache_args(tiny, out)) == 0
    before = shard_bytes(out)
    (out / "shard-00002.npy").unlink()
    (out / "shard-00001.npy").write_bytes(before["shard-00001.npy"][:100])
    capsys.readouterr()
    assert cache_clip_features.main(cache_args(tiny, out)) == 0
    assert "this rank encoded 2, 2 were already finished" in capsys.readouterr().out
    assert shard_bytes(out) == before
    # fast-order views are not resumed as original-order ones
    assert cache_clip_features.main(cache_args(tiny, out, "--view-order", "original")) == 2
    assert "holds a cache made with other settings (view_order differ)" in capsys.readouterr().err


@pytest.mark.slow
def test_exemplar_dict_crops_like_the_inference_tools_and_drops_lvis_rare(tiny, tmp_path):
    coco = tmp_path / "coco" / "train2017"
    coco.mkdir(parents=True)
    rng = np.random.default_rng(2)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)).save(coco / f"{i:012d}.jpg")
    rec = lambda i, box: {"dataset": "lvis", "file_name": f"train2017/{i:012d}.jpg", "bbox": box, "category_id": 1}
    exemplar_dict = {
        "apple.n.01": [rec(0, [10.5, 20, 30, 40]), rec(1, [50, 5, 60, 30]), rec(2, [0, 0, 20, 20])],
        "rare_thing.n.01": [rec(0, [1, 1, 10, 10]), rec(1, [2, 2, 10, 10])],
        "bus.n.01": [rec(2, [30, 30, 90, 60]), rec(0, [100, 60, 50, 50])],
    }
    path = tmp_path / "exemplar_dict.json"
    path.write_text(json.dumps(exemplar_dict))
    cats = tmp_path / "cats.json"
    cats.write_text(json.dumps({"categories": [{"id": 1, "synset": "apple.n.01", "frequency": "f"},
                                               {"id": 2, "synset": "rare_thing.n.01", "frequency": "r"},
                                               {"id": 3, "synset": "bus.n.01", "frequency": "c"}]}))
    out = tmp_path / "c"
    assert cache_clip_features.main(["--exemplar-dict", str(path), "--lvis-ann", str(cats), "--lvis-img-dir", str(tmp_path / "coco"),
                                     "--out", str(out), "--nw", "0", *tiny["clip"]]) == 0
    cache = FeatureCache(out)
    assert cache.classes == ["apple.n.01", "bus.n.01"] and list(cache.class_sizes) == [3, 2]
    bundle = load_clip(str(tiny_clip_config_path()), str(tiny["ckpt"]), "cpu")
    record = exemplar_dict["bus.n.01"][1]
    crop = load_exemplar_crop(record, {"lvis": tmp_path / "coco"}, 0.2)
    with torch.inference_mode():
        expected = bundle.model.encode_image(bundle.preprocess(crop)[None])[0].numpy()
    np.testing.assert_allclose(cache.gather(np.array([4]))[0].astype(np.float32), expected, rtol=2e-3, atol=2e-3)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["other-clip", "views", "strict", "missing-root", "lvis-ann-missing"])
def test_bad_input_exits_2_with_one_line(tiny, tmp_path, capsys, case):
    out = tmp_path / "c"
    args = cache_args(tiny, out)
    expected = {
        "other-clip": "holds features of CLIP",
        "views": "--views 2: more than 1 view only with --tta",
        "strict": "1 class has fewer than 2 images: n00009 (0) (--strict)",
        "missing-root": "image folder not found",
        "lvis-ann-missing": "x.json: LVIS annotation file not found",
    }[case]
    if case == "other-clip":
        assert cache_clip_features.main(args) == 0
        other = tmp_path / "other.pt"
        save_random_checkpoint(tiny_clip_config_path(), other, seed=5)
        args = cache_args(tiny, out)
        args[args.index("--pretrained") + 1] = str(other)
        before = shard_bytes(out)
    elif case == "views":
        args.remove("--tta")
    elif case == "strict":
        args.append("--strict")
    elif case == "missing-root":
        args[1] = str(tmp_path / "nope")
    else:
        args += ["--lvis-ann", str(tmp_path / "x.json")]
    capsys.readouterr()
    assert cache_clip_features.main(args) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error:" in line or "Traceback" in line]
    assert len(err) == 1 and expected in err[0], err
    if case == "other-clip":
        assert str(other) in err[0] and str(tiny["ckpt"]) in err[0]
        assert shard_bytes(out) == before
    else:
        assert not out.exists()


@pytest.mark.slow
def test_lvis_ann_drops_the_wnid_folders_of_rare_classes_from_a_tree(tiny, tmp_path):
    from mmovod.readers.synset_table import synset_table

    table = synset_table()
    cats = [{"id": 1, "synset": "aerosol.n.02", "frequency": "c"}, {"id": 2, "synset": "beef.n.01", "frequency": "f"},
            {"id": 3, "synset": "applesauce.n.01", "frequency": "r"}]
    tree = tmp_path / "tree"
    rng = np.random.default_rng(1)
    wnids = [table[c["synset"]].wnid for c in cats]
    for wnid in wnids:
        (tree / wnid).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(tree / wnid / f"{wnid}_{i}.JPEG")
    ann = tmp_path / "cats.json"
    ann.write_text(json.dumps({"categories": cats}))
    out = tmp_path / "c"
    assert cache_clip_features.main(["--image-root", str(tree), "--out", str(out), "--lvis-ann", str(ann),
                                     "--nw", "0", *tiny["clip"]]) == 0
    assert FeatureCache(out).classes == sorted(wnids[:2])


@pytest.mark.slow
def test_trained_aggregator_loads_in_the_inference_tool_and_sees_the_cached_views(tiny, tmp_path, one_thread):
    """cache -> train -> generate_vision_classifier_agg: the tool's classifier equals the trained
    aggregator applied to the cached views, because both make view v of image e of class c alike."""
    from mmovod.aggregator.model import VisualAggregator
    from tools import generate_vision_classifier_agg, train_visual_aggregator

    cache_dir, run = tmp_path / "c", tmp_path / "run"
    assert cache_clip_features.main(cache_args(tiny, cache_dir)) == 0
    assert train_visual_aggregator.main(["--cache", str(cache_dir), "--out", str(run), "--steps", "3", "--batch-classes", "4",
                                         "--k-max", "2", "--num-layers", "1", "--warmup-steps", "1", *tiny["clip"]]) == 0
    cache = FeatureCache(cache_dir)
    exemplars = [[{"dataset": "imagenet21k", "file_name": item.split(":", 1)[1]} for item in
                  (cache_dir / "items.txt").read_text().splitlines()[start:start + 3]] for start in cache.class_offsets[:-1]]
    ex_path = tmp_path / "exemplars.json"
    ex_path.write_text(json.dumps(exemplars))
    out = tmp_path / "agg.npy"
    assert generate_vision_classifier_agg.main([
        "--exemplar-list", str(ex_path), "--out-path", str(out), "--num-augs", "2", "--tta", "--seed", "0", "--nw", "0",
        "--load-path", str(run / "visual_aggregator.pth"), "--num-layers", "1", "--imagenet-img-dir", str(tiny["tree"]),
        *tiny["clip"]]) == 0
    got = np.load(out).astype(np.float32)
    model = VisualAggregator.from_checkpoint(run / "visual_aggregator.pth", num_layers=1)
    rows = np.concatenate([np.repeat(np.arange(s, s + 3), 2) for s in cache.class_offsets[:-1]])
    views = np.tile([0, 1], len(rows) // 2)
    sets = torch.from_numpy(cache.gather(rows, views).astype(np.float32)).reshape(4, 6, 512)
    with torch.inference_mode():
        expected = model(sets).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-2, atol=5e-3)
