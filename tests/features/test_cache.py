import json

import numpy as np
import pytest

from mmovod.io.errors import InputError
from mmovod.features.feature_cache import FeatureCache, shard_name, write_array_cache

from tests.aggregator_toy import TOY_CLIP, gaussian_classes, toy_cache


def test_gather_across_shards_matches_a_naive_concatenation(tmp_path):
    classes = gaussian_classes(0, 5, 13, views=3, dim=16)
    cache = FeatureCache(write_array_cache(tmp_path / "c", classes, TOY_CLIP, shard_size=7))
    assert len(cache.shards) == -(-65 // 7)
    everything = np.concatenate([f for _, f in classes])
    rng = np.random.default_rng(1)
    rows = rng.integers(0, 65, size=200)
    views = rng.integers(0, 3, size=200)
    got = cache.gather(rows, views)
    assert got.dtype == np.float16 and got.shape == (200, 16)
    np.testing.assert_array_equal(got, everything[rows, views].astype(np.float16))
    assert list(cache.class_rows("c002")) == list(range(26, 39))
    assert isinstance(cache.shards[0], np.memmap)


def test_truncated_shard_is_named(tmp_path):
    root = toy_cache(tmp_path / "c", n_classes=4, per_class=10, shard_size=15)
    victim = root / shard_name(1)
    victim.write_bytes(victim.read_bytes()[:300])
    with pytest.raises(InputError, match=r"shard-00001\.npy: corrupt shard"):
        FeatureCache(root)


def test_missing_shard_and_non_finite_rows_are_named(tmp_path):
    root = toy_cache(tmp_path / "c", n_classes=4, per_class=10, shard_size=15)
    arr = np.load(root / shard_name(2))
    arr[3, 0, 0] = np.nan
    np.save(root / shard_name(2), arr)
    cache = FeatureCache(root)
    rows = np.array([0, 33])
    with pytest.raises(InputError, match=r"shard-00002\.npy: corrupt shard \(non-finite features at row 33\)"):
        cache.check_finite(rows, cache.gather(rows))
    (root / shard_name(0)).unlink()
    with pytest.raises(InputError, match=r"shard-00000\.npy: shard missing"):
        FeatureCache(root)


def test_reusing_a_folder_for_another_clip_is_refused(tmp_path):
    toy_cache(tmp_path / "c", n_classes=3, per_class=4)
    other = {**TOY_CLIP, "clip_model": "other-clip"}
    with pytest.raises(InputError, match="toy-clip .* not of the requested other-clip"):
        write_array_cache(tmp_path / "c", gaussian_classes(0, 3, 4), other, 100)


def test_a_version_1_index_is_read_with_its_old_key_spellings(tmp_path):
    """Version 1 wrote `normalised` and `views`; version 2 writes `normalized` and `num_views`."""
    root = toy_cache(tmp_path / "c", n_classes=3, per_class=4, shard_size=5, views=2)
    index = root / "index.json"
    doc = json.loads(index.read_text())
    assert doc["version"] == 2 and doc["normalized"] is False and doc["num_views"] == 2
    assert "normalised" not in doc and "views" not in doc
    current = FeatureCache(root)
    old = {("normalised" if k == "normalized" else "views" if k == "num_views" else k): v for k, v in doc.items()}
    index.write_text(json.dumps({**old, "version": 1}))
    legacy = FeatureCache(root)
    assert legacy.views == 2 and legacy.index["normalized"] is False
    np.testing.assert_array_equal(legacy.gather(np.arange(12), np.ones(12, dtype=int)),
                                  current.gather(np.arange(12), np.ones(12, dtype=int)))
    index.write_text(json.dumps({**old, "version": 2}))  # the old spelling under the new version is refused
    with pytest.raises(InputError, match="num_views"):
        FeatureCache(root)
