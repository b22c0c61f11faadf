"""The report's contact sheets show the view the encoder sees: view 0 in the build's view order."""
from types import SimpleNamespace

import pytest
import torch

from mmovod.clip.crops import TTA_CONTEXT, load_exemplar_crop
from mmovod.clip.exemplar_views import ViewPlan, exemplar_input
from mmovod.clip.specs import ViewSpec
from mmovod.clip.view_ops import Preprocessing, pil_to_pixels
from bench.original_views import make_view, view_transform
from mmovod.vocabulary.report import first_view, sheet_view_plan
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
