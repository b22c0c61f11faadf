"""The report's contact sheets show the view the encoder sees: view 0 in the build's view order."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mmovod.clip.crops import TTA_CONTEXT, load_exemplar_crop
from mmovod.clip.exemplar_views import ViewPlan, exemplar_input
from mmovod.clip.specs import ViewSpec
from mmovod.clip.view_ops import Preprocessing, pil_to_pixels
from bench.original_views import make_view, view_transform
from mmovod.vocabulary.build_report import first_view, sheet_view_plan
from tests.view_fixtures import PREPROCESS, photo

BUNDLE = SimpleNamespace(preprocess=PREPROCESS, image_size=32)
PREP = Preprocessing.from_preprocess(PREPROCESS, 32)


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """Whole images and boxes on photos from 40 px to 1600 px wide (the large ones decode reduced; whole
    image 4, 300 x 280, allows a 1/8 decode for view 0 alone but only 1/4 for all five)."""
    root = tmp_path_factory.mktemp("photos")
    out = []
    for i, (w, h) in enumerate([(40, 30), (150, 120), (300, 280), (1600, 1200)]):
        path = root / f"{i}.jpg"
        photo(i, w, h).save(path, quality=92)
        out.append({"dataset": "file", "file_name": str(path)})
        out.append({"dataset": "file", "file_name": str(path), "bbox": [w / 5, h / 6, w / 2, h / 3]})
    return out


@pytest.mark.slow
def test_fast_order_sheet_view_is_the_encoders_view_0(records):
    spec = ViewSpec(num_views=5, seed=7, context=TTA_CONTEXT)
    for e, record in enumerate(records):
        encoded = exemplar_input(record, {}, TTA_CONTEXT, ViewPlan(PREP, 5, seed=7), 2, e).views[0]
        torch.testing.assert_close(pil_to_pixels(first_view(record, 2, e, sheet_view_plan(BUNDLE, spec), spec.context)), encoded, rtol=0, atol=0)


def test_original_order_sheet_view_is_the_original_transforms_view_0(records):
    spec = ViewSpec(num_views=5, seed=7, context=TTA_CONTEXT, order="original")
    for e, record in enumerate(records):
        crop = load_exemplar_crop(record, {}, TTA_CONTEXT)
        expected = make_view(crop, view_transform(PREPROCESS, 32), 7, 2, e, 0)
        seen = pil_to_pixels(first_view(record, 2, e, sheet_view_plan(BUNDLE, spec), spec.context))
        torch.testing.assert_close(PREP.normalise(seen[None])[0], expected, rtol=0, atol=0)


def test_without_tta_the_sheet_shows_the_models_preprocessing(records):
    spec = ViewSpec(num_views=5, seed=7, context=0.2, tta=False)
    for e, record in enumerate(records):
        seen = pil_to_pixels(first_view(record, 0, e, sheet_view_plan(BUNDLE, spec), spec.context))
        torch.testing.assert_close(PREP.normalise(seen[None])[0], PREPROCESS(load_exemplar_crop(record, {}, 0.2)),
                                   rtol=0, atol=0)


def test_sheet_crops_decode_reduced_and_match_the_full_size_crop_as_tiles(records, monkeypatch):
    from mmovod.vocabulary import build_report

    reductions = []
    real = build_report.decode_image
    monkeypatch.setattr(build_report, "decode_image", lambda path, reduce: (d := real(path, reduce), reductions.append(
        d.reduction))[0])
    for record in records:
        tile = np.asarray(build_report._tile(build_report.sheet_crop(record, TTA_CONTEXT)), dtype=np.float32)
        full = np.asarray(build_report._tile(load_exemplar_crop(record, {}, TTA_CONTEXT)), dtype=np.float32)
        assert np.abs(tile - full).mean() < 4, record  # the same picture, reduced by the decoder instead of resized
    assert reductions == [1, 1, 1, 1, 2, 1, 8, 4]  # a 1600 x 1200 photo is decoded at 1/8 (whole) or 1/4 (its box)
    # the check can fail: a crop of the wrong region is a different picture
    shifted = dict(records[-2], bbox=[0, 0, 400, 300])
    tile = np.asarray(build_report._tile(build_report.sheet_crop(shifted, TTA_CONTEXT)), dtype=np.float32)
    assert np.abs(tile - np.asarray(build_report._tile(load_exemplar_crop(records[-2], {}, TTA_CONTEXT)))).mean() > 4


def test_a_fast_order_sheet_decodes_each_photo_once_for_crop_and_view(records, monkeypatch):
    from mmovod.clip import exemplar_views
    from mmovod.vocabulary import build_report

    decodes = []
    real = exemplar_views.decode_image
    monkeypatch.setattr(exemplar_views, "decode_image", lambda *a: (decodes.append(a[0]), real(*a))[1])
    monkeypatch.setattr(build_report, "decode_image", lambda *a: (decodes.append(a[0]), real(*a))[1])
    plan = sheet_view_plan(BUNDLE, ViewSpec(num_views=5, seed=7, context=TTA_CONTEXT))
    for e, record in enumerate(records):
        crop, _ = build_report.sheet_pair(record, 2, e, plan, TTA_CONTEXT)
        full = np.asarray(build_report._tile(load_exemplar_crop(record, {}, TTA_CONTEXT)), dtype=np.float32)
        # the same picture (blurrier here: this model's 32-pixel views let the encoder decode a crop to 54 pixels)
        assert np.abs(np.asarray(build_report._tile(crop), dtype=np.float32) - full).mean() < 8, record
    assert len(decodes) == len(records)
