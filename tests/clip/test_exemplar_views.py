"""One exemplar's views from its record: the original order is today's, the fast order is the same for
any worker count and wherever its views are made, and a reduced JPEG decode changes pixels only by
rounding (EXIF-rotated and mirrored photos included)."""
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from mmovod.clip.crops import TTA_CONTEXT, decode_image, load_exemplar_crop
from mmovod.clip.exemplar_views import ViewPlan, draft_reduction, exemplar_input
from mmovod.clip.view_ops import Preprocessing, ViewRecipe, fast_views, pil_to_pixels
from mmovod.clip.views import draw_view_params
from bench.original_views import make_views, view_transform
from tests.view_fixtures import PREPROCESS, photo

PREP = Preprocessing.from_preprocess(PREPROCESS, 32)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("views")
    (root / "train2017").mkdir()
    records = []
    for i, (size, bbox) in enumerate([((120, 90), [10.5, 20.2, 40, 30]), ((90, 140), [50, 60, 39.5, 70]),
                                      ((640, 480), [100, 50, 400, 380]), ((50, 40), [0, 0, 49, 39])]):
        photo(i, *size).save(root / f"train2017/{i}.jpg", quality=95)
        records.append({"dataset": "lvis", "file_name": f"train2017/{i}.jpg", "bbox": bbox})
    photo(9, 700, 500).save(root / "train2017/whole.jpg", quality=95)
    records.append({"dataset": "imagenet21k", "file_name": "train2017/whole.jpg"})
    photo(8, 60, 50).save(root / "train2017/p.png")
    records.append({"dataset": "lvis", "file_name": "train2017/p.png", "bbox": [5, 5, 30, 30]})
    return {"lvis": root, "imagenet21k": root}, records


@pytest.mark.parametrize("tta", [True, False])
def test_original_order_is_todays_views(images, tta):
    roots, records = images
    plan = ViewPlan(PREP, num_views=3, tta=tta, order="original", seed=4)
    today = view_transform(PREPROCESS, 32, tta)
    for e, record in enumerate(records):
        expected = make_views(load_exemplar_crop(record, roots, TTA_CONTEXT), today, 4, 7, e, 3)
        views = exemplar_input(record, roots, TTA_CONTEXT, plan, 7, e).views
        torch.testing.assert_close(PREP.normalise(views), expected, rtol=0, atol=0)


def test_plain_views_are_the_same_in_both_orders(images):
    roots, records = images
    for e, record in enumerate(records):
        fast, original = (exemplar_input(record, roots, TTA_CONTEXT, ViewPlan(PREP, 2, tta=False, order=o), 0, e).views
                          for o in ("fast", "original"))
        assert torch.equal(fast, original)


@pytest.mark.slow
def test_deferred_views_are_the_views(images):
    roots, records = images
    for e, record in enumerate(records):
        made = exemplar_input(record, roots, TTA_CONTEXT, ViewPlan(PREP, 4, seed=1), 3, e).views
        deferred = exemplar_input(record, roots, TTA_CONTEXT, ViewPlan(PREP, 4, seed=1, defer=True), 3, e)
        assert deferred.views is None and deferred.crop.dtype == torch.uint8
        assert torch.equal(fast_views(deferred.crop, deferred.recipe, 32), made)


class Views(Dataset):
    def __init__(self, roots, records, plan):
        self.roots, self.records, self.plan = roots, records, plan

    def __len__(self):
        return len(self.records)

    def __getitem__(self, e):
        return exemplar_input(self.records[e], self.roots, TTA_CONTEXT, self.plan, 2, e).views


@pytest.mark.slow
@pytest.mark.parametrize("order", ["fast", "original"])
def test_views_are_bit_identical_for_any_worker_count(images, order):
    roots, records = images
    dataset = Views(roots, records, ViewPlan(PREP, 3, order=order, seed=9))
    runs = [torch.stack(list(DataLoader(dataset, batch_size=None, num_workers=w))) for w in (0, 2)]
    assert torch.equal(runs[0], runs[1])


@pytest.mark.parametrize("min_side, expected", [(31, 1), (32, 1), (63, 1), (64, 2), (127, 2), (128, 4),
                                                (255, 4), (256, 8), (5000, 8)])
def test_draft_reduction_rule(min_side, expected):
    assert draft_reduction(min_side, 32) == expected


@pytest.mark.slow
def test_reduced_decode_changes_views_by_rounding_only(images):
    roots, records = images
    plan = ViewPlan(PREP, 5, seed=3)
    for e in (2, 4):  # a 400-pixel box and a whole 700 x 500 photo: decoded at 1/4 and 1/8 for 32-pixel views
        record = records[e]
        crop = load_exemplar_crop(record, roots, TTA_CONTEXT)
        params = [draw_view_params(crop.width, crop.height, 3, 0, e, v) for v in range(5)]
        full = fast_views(pil_to_pixels(crop), ViewRecipe.from_params(params), 32)
        drafted = exemplar_input(record, roots, TTA_CONTEXT, plan, 0, e).views
        assert decode_image(roots["lvis"] / record["file_name"], lambda w, h: 4).reduction == 4
        d = (drafted.int() - full.int()).abs().float()
        assert float(d.mean()) < 1.0 and float(d.mean()) > 0, float(d.mean())


# orientation -> how the stored pixels are turned so that EXIF orientation shows the photo upright
STORED = {2: [Image.Transpose.FLIP_LEFT_RIGHT], 3: [Image.Transpose.ROTATE_180], 6: [Image.Transpose.ROTATE_90],
          7: [Image.Transpose.TRANSVERSE], 8: [Image.Transpose.ROTATE_270]}


@pytest.mark.slow
@pytest.mark.parametrize("orientation", sorted(STORED))
def test_reduced_decode_of_an_exif_oriented_photo_lines_up(tmp_path, orientation):
    upright = photo(11, 605, 443)  # sizes not divisible by the reduction: mirrored axes need the origin shift
    upright.save(tmp_path / "upright.jpg", quality=100)
    stored = upright
    for step in STORED[orientation]:
        stored = stored.transpose(step)
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(tmp_path / "turned.jpg", quality=100, exif=exif)
    plan = ViewPlan(PREP, 4, seed=2)
    record = {"dataset": "lvis", "bbox": [150, 100, 300, 280]}
    views = {}
    for name in ("upright", "turned"):
        record["file_name"] = f"{name}.jpg"
        assert decode_image(tmp_path / record["file_name"], lambda w, h: 8).full_size == (605, 443)
        views[name] = exemplar_input(record, {"lvis": tmp_path}, TTA_CONTEXT, plan, 0, 0).views
    d = (views["upright"].int() - views["turned"].int()).abs().float()
    assert float(d.mean()) < 1.0, float(d.mean())


def test_unknown_view_order_is_refused():
    from mmovod.clip.specs import ViewSpec
    from mmovod.io.errors import InputError

    with pytest.raises(InputError, match="view order must be one of fast, original, found 'slow'"):
        ViewSpec(order="slow")
