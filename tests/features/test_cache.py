import numpy as np
import pytest

from mmovod.io.errors import InputError
from mmovod.features.cache import FeatureCache, shard_name, write_array_cache

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
