"""encode_view_sets: several view settings, sharing passes where the views coincide, equal one pass per setting."""
import dataclasses
import numpy as np
import pytest
import torch
from PIL import Image

from mmovod.classifiers.vision import encode_exemplar_views
from mmovod.readers.exemplar_records import BadImageError
from mmovod.clip.specs import ViewSpec
from mmovod.vocabulary.view_sets import encode_view_sets, same_views


@pytest.fixture(scope="module")
def bundle(tiny_bundle):
    return tiny_bundle


@pytest.fixture
def records(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i, size in enumerate([(80, 60), (50, 90), (64, 64)]):
        path = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    whole = {"dataset": "file", "file_name": paths[0]}
    small_box = {"dataset": "file", "file_name": paths[1], "bbox": [5, 10, 20, 30]}
    filling_box = {"dataset": "file", "file_name": paths[2], "bbox": [0, 0, 63, 63]}
    return [[whole, small_box], [], [filling_box]]


AVG = ViewSpec(num_views=3, tta=True, context=0.4, seed=7, workers=0)
AGG = ViewSpec(num_views=3, tta=True, context=0.2, seed=7, workers=0)
PLAIN = ViewSpec(num_views=3, tta=False, context=0.2, seed=7, workers=0)


@pytest.mark.slow
@pytest.mark.parametrize("second", [AGG, PLAIN], ids=["tta", "plain"])
def test_one_pass_equals_a_pass_per_setting(bundle, records, second):
    present = [records[0], records[2]]  # encode_exemplar_views needs every class to have an exemplar
    together = encode_view_sets(bundle, present, [AVG, second], batch_size=4, progress=False)
    for spec, got in zip([AVG, second], together):
        alone = encode_exemplar_views(present, bundle, spec, {}, batch_size=5, progress=False)
        assert got.embeddings.shape == alone.embeddings.shape == (3, 3 if spec.tta else 1, 512)
        torch.testing.assert_close(got.embeddings, alone.embeddings, rtol=1e-5, atol=1e-5)
        assert got.class_of.tolist() == [0, 0, 1] and got.valid.all()


@pytest.mark.slow
def test_a_class_without_exemplars_keeps_its_index(bundle, records):
    [got] = encode_view_sets(bundle, records, [AVG], batch_size=4, progress=False)
    assert got.class_of.tolist() == [0, 0, 2] and got.num_classes == 3
    [alone] = encode_view_sets(bundle, [records[2]], [AVG], batch_size=4, progress=False)
    # view seeds use the class index: the same exemplar as class 2 and as class 0 gets other views
    assert not torch.allclose(got.embeddings[2], alone.embeddings[0])


def test_views_are_shared_only_where_every_crop_and_view_coincides(records):
    whole_only = [[records[0][0]], [], []]
    assert same_views(AVG, AGG, whole_only)  # whole images: the context does not matter
    assert not same_views(AVG, AGG, records)  # a box: its crop depends on the context
    assert same_views(AVG, dataclasses.replace(AVG, num_views=5), records)
    assert not same_views(AVG, PLAIN, whole_only) and not same_views(AVG, dataclasses.replace(AVG, seed=8), whole_only)


@pytest.mark.slow
def test_shared_pass_equals_a_pass_per_setting(bundle, records):
    whole_only = [[records[0][0]], [records[0][0]]]
    together = encode_view_sets(bundle, whole_only, [AGG, dataclasses.replace(AVG, num_views=5)], progress=False)
    for spec, got in zip([AGG, dataclasses.replace(AVG, num_views=5)], together):
        alone = encode_exemplar_views(whole_only, bundle, spec, {}, batch_size=5, progress=False)
        torch.testing.assert_close(got.embeddings, alone.embeddings, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_unreadable_image_stops_or_is_skipped(bundle, records, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 nothing")
    records[2].append({"dataset": "file", "file_name": str(bad)})
    with pytest.raises(BadImageError, match="bad.jpg: cannot read image"):
        encode_view_sets(bundle, records, [AVG], batch_size=4, progress=False)
    skip = ViewSpec(num_views=3, tta=True, context=0.4, seed=7, workers=0, skip_bad=True)
    [got] = encode_view_sets(bundle, records, [skip], batch_size=4, progress=False)
    assert got.valid.tolist() == [True, True, True, False]
    assert got.skipped == [{"class": 2, "exemplar": 1, "path": str(bad), "reason": got.skipped[0]["reason"]}]
