"""TTA views: reproducible from their four indices alone, global RNG untouched, plain = preprocess."""
import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T

from mmovod.clip.views import view_seed
from bench.original_views import make_view, make_views, view_transform

PREPROCESS = T.Compose([T.Resize(16, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(16), T.ToTensor()])


def crop():
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))


def test_views_depend_only_on_their_indices():
    tta = view_transform(PREPROCESS, 16)
    assert tta.transforms[0].size == (64, 64)  # 4x the input size
    image = crop()
    first = make_views(image, tta, 7, 3, 1, 4)
    torch.manual_seed(123)  # unrelated global state must not matter
    again = [make_view(image, tta, 7, 3, 1, v) for v in reversed(range(4))][::-1]
    torch.testing.assert_close(first, torch.stack(again), rtol=0, atol=0)
    assert first.shape == (4, 3, 16, 16)
    assert len({tuple(v.flatten()[:50].tolist()) for v in first}) == 4  # the views differ
    other = make_view(image, tta, 7, 4, 1, 0)
    assert not torch.equal(other, first[0])


def test_global_rng_is_restored():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    make_view(crop(), view_transform(PREPROCESS, 16), 0, 0, 0, 0)
    torch.testing.assert_close(torch.rand(3), expected, rtol=0, atol=0)


def test_without_tta_a_view_is_the_preprocessing():
    image = crop()
    plain = make_view(image, view_transform(PREPROCESS, 16, tta=False), 0, 0, 0, 0)
    torch.testing.assert_close(plain, PREPROCESS(image), rtol=0, atol=0)


def test_seeds_are_distinct_and_stable():
    seeds = {view_seed(0, c, e, v) for c in range(20) for e in range(5) for v in range(5)}
    assert len(seeds) == 500
    assert view_seed(1, 2, 3, 4) == view_seed(1, 2, 3, 4)
