"""View parameters and the two view orders: the original order is today's views bit for bit; the fast
order follows PIL's operations at the model size, batched or not, fractional boxes included."""
import pytest
import torch
from PIL import Image
from torchvision.transforms import functional as TF
from torchvision.transforms.v2 import functional as F

from mmovod.clip import view_ops
from mmovod.clip.view_ops import (Preprocessing, ViewRecipe, fast_views, flip_and_jitter, original_view,
                                  pil_to_pixels, plain_view, resize_boxes)
from mmovod.clip.views import ViewParams, draw_view_params
from bench.original_views import make_view, view_transform
from mmovod.io.errors import InputError
from tests.view_fixtures import PREPROCESS, photo

PREP = Preprocessing.from_preprocess(PREPROCESS, 32)


def levels(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.int() - b.int()).abs().flatten().float()


# crops of ordinary, thin (RandomResizedCrop's fallback box) and tiny shapes
@pytest.mark.parametrize("size", [(70, 50), (300, 7), (3, 2)])
def test_params_replayed_in_the_original_order_are_todays_views_bit_for_bit(size):
    crop = photo(1, *size)
    today = view_transform(PREPROCESS, 32)
    for v in range(12):
        params = draw_view_params(crop.width, crop.height, 5, 2, 1, v)
        expected = make_view(crop, today, 5, 2, 1, v)
        torch.testing.assert_close(PREP.normalise(original_view(crop, params, PREP)[None])[0], expected,
                                   rtol=0, atol=0)


def test_params_are_drawn_as_the_compose_draws_them_and_leave_the_global_rng_alone():
    torch.manual_seed(3)
    before = torch.rand(2)
    torch.manual_seed(3)
    drawn = [draw_view_params(90, 60, 0, 0, 0, v) for v in range(40)]
    torch.testing.assert_close(torch.rand(2), before, rtol=0, atol=0)
    assert {p.jitter for p in drawn} == {True, False} and {p.flip for p in drawn} == {True, False}
    for p in drawn:
        assert 0.8 * 90 * 60 * 0.99 <= p.width * p.height <= 90 * 60 and p.left + p.width <= 90
        assert sorted(p.order) == ([0, 1, 2, 3] if p.jitter else [])
        if p.jitter:
            assert 0.8 <= p.brightness <= 1.2 and 0.8 <= p.saturation <= 1.2 and -0.05 <= p.hue <= 0.05
        else:
            assert (p.brightness, p.contrast, p.saturation, p.hue) == (1.0, 1.0, 1.0, 0.0)


def test_plain_view_is_the_preprocessing():
    crop = photo(2, 45, 80)
    torch.testing.assert_close(PREP.normalise(plain_view(crop, PREP)[None])[0], PREPROCESS(crop), rtol=0, atol=0)


def test_preprocessing_must_end_in_to_tensor_and_normalize():
    with pytest.raises(InputError, match="not PIL steps, ToTensor, Normalize"):
        Preprocessing.from_preprocess(PREPROCESS.transforms[0], 32)
    assert PREP.mean == (0.5, 0.4, 0.3) and PREP.std == (0.2, 0.25, 0.3)


def pil_reference(pixels: torch.Tensor, p: ViewParams, size: int) -> torch.Tensor:
    """One view the naive way: torch's resize of the box, then PIL's flip and jitter at `size`."""
    view = F.resized_crop(pixels, p.top, p.left, p.height, p.width, [size, size],
                          interpolation=F.InterpolationMode.BICUBIC, antialias=True)
    image = Image.fromarray(view.permute(1, 2, 0).numpy())
    if p.flip:
        image = TF.hflip(image)
    ops = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
    factors = (p.brightness, p.contrast, p.saturation, p.hue)
    for op in p.order:
        image = ops[op](image, factors[op])
    return pil_to_pixels(image)


@pytest.mark.slow
def test_fast_order_is_pils_jitter_at_the_model_size():
    crop = photo(3, 150, 120)
    pixels = pil_to_pixels(crop)
    params = [draw_view_params(150, 120, 1, 0, 0, v) for v in range(30)]
    assert sum(p.jitter for p in params) > 15
    fast = fast_views(pixels, ViewRecipe.from_params(params), 48)
    naive = torch.stack([pil_reference(pixels, p, 48) for p in params])
    d = levels(fast, naive)
    # PIL quantises hue in 8-bit HSV; float rounding moves a few pixels across a level
    assert float(d.mean()) < 0.02 and float(torch.quantile(d, 0.999)) <= 1, (float(d.mean()), float(d.max()))


@pytest.mark.slow
def test_batched_views_equal_one_view_at_a_time():
    crop = photo(4, 90, 70)
    pixels = pil_to_pixels(crop)
    params = [draw_view_params(90, 70, 2, 1, 3, v) for v in range(16)]
    batched = fast_views(pixels, ViewRecipe.from_params(params), 32)
    single = torch.cat([fast_views(pixels, ViewRecipe.from_params([p]), 32) for p in params])
    together = flip_and_jitter(torch.cat([resize_boxes(pixels, ViewRecipe.from_params([p]).boxes, 32)
                                          for p in params]), ViewRecipe.cat([ViewRecipe.from_params([p])
                                                                             for p in params]))
    assert float(levels(batched, single).max()) <= 1 and float(levels(batched, single).mean()) < 1e-3
    torch.testing.assert_close(together, batched, rtol=0, atol=0)


def test_fractional_boxes_resample_as_cropping_then_pil_resizing_does():
    crop = photo(5, 200, 160)
    pixels = pil_to_pixels(crop)
    for top, left, height, width in [(10.25, 3.5, 120.75, 100.1), (0.0, 0.0, 160.0, 200.0), (50.5, 60.5, 20.0, 24.0),
                                     (10.0, 3.0, 120.0, 100.0)]:
        ours = resize_boxes(pixels, torch.tensor([[top, left, height, width]], dtype=torch.float64), 40)[0]
        x0, y0, x1, y1 = int(left), int(top), -int(-(left + width) // 1), -int(-(top + height) // 1)
        covering = crop.crop((x0, y0, x1, y1))
        pil = pil_to_pixels(covering.resize((40, 40), Image.BICUBIC,
                                            box=(left - x0, top - y0, left - x0 + width, top - y0 + height)))
        assert float(levels(ours, pil).max()) <= 1, (top, left)
    # an integer box takes torch's uint8 path (crop, then resize), the fractional path's special case
    box = torch.tensor([[10.0, 3.0, 120.0, 100.0]], dtype=torch.float64)
    fractional = view_ops._resample_box(pixels, 10.0, 3.0, 120.0, 100.0, 40)
    assert float(levels(resize_boxes(pixels, box, 40)[0], fractional).max()) <= 1


def test_a_recipe_crosses_processes_as_plain_values_and_comes_back_exact():
    import pickle
    from multiprocessing.reduction import ForkingPickler

    import torch.multiprocessing  # noqa: F401  (registers torch's shared-memory reductions, as DataLoader does)

    params = [draw_view_params(150, 120, 1, 0, 0, v) for v in range(6)]
    recipe = ViewRecipe.from_params(params, [(p.top / 3 + 0.1, p.left / 3, p.height / 3, p.width / 3) for p in params])
    sent = bytes(ForkingPickler.dumps(recipe))  # as a DataLoader worker sends it
    back = pickle.loads(sent)
    for name in ("boxes", "flip", "jitter", "order", "factors"):
        a, b = getattr(recipe, name), getattr(back, name)
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), name
    assert b"torch" not in sent  # no tensor (and so no shared-memory handle) in the message
