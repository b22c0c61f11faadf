"""The one encoding pipeline: independent of batch size and workers; equal to one view at a time (the
original order to today's per-view transform, the fast order to each exemplar's own views)."""

import contextlib
import dataclasses
import gc
import multiprocessing
import os
import signal
import sys

import pytest
import torch
from torch.utils.data import dataloader

from tests.exemplar_fixtures import build_demo, load_tiny, naive_view_embeddings
from mmovod.clip.crops import TTA_CONTEXT
from mmovod.readers.exemplar_records import BadImageError
from mmovod.clip.exemplar_views import exemplar_input
from mmovod.clip.factory import load_clip
from mmovod.clip import image_encoding
from mmovod.clip.image_encoding import ItemDataset, encode_exemplars, encode_items, view_plan
from mmovod.clip.specs import ViewSpec
from mmovod.io.errors import InputError


@pytest.fixture(scope="module")
def demo(tmp_path_factory, demo_dataset):
    return build_demo(demo_dataset, tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def bundle(demo):
    return load_tiny(demo)


def encode(bundle, demo, exemplars=None, batch_size=8, **kw):
    views = ViewSpec(**{"num_views": 3, "seed": 11, "workers": 0, "context": TTA_CONTEXT, **kw})
    return encode_exemplars(bundle, exemplars or demo["exemplars"], demo["roots"], views, batch_size=batch_size,
                            progress=False)


@pytest.mark.slow
@pytest.mark.parametrize("order", ["fast", "original"])
def test_views_do_not_depend_on_order(bundle, demo, order):
    items = [(c, e, r) for c, records in enumerate(demo["exemplars"]) for e, r in enumerate(records)]
    ds = ItemDataset(items, demo["roots"], TTA_CONTEXT, view_plan(bundle, ViewSpec(num_views=2, seed=5, order=order)))
    forward = [ds[i][1].views for i in range(len(ds))]
    backward = [ds[i][1].views for i in reversed(range(len(ds)))][::-1]
    for a, b in zip(forward, backward):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.slow
@pytest.mark.parametrize("order", ["fast", "original"])
def test_same_embeddings_for_any_batch_size_and_worker_count(bundle, demo, order):
    base = encode(bundle, demo, batch_size=2, workers=0, order=order)
    for batch_size, workers in ((7, 2), (64, 1)):
        other = encode(bundle, demo, batch_size=batch_size, workers=workers, order=order)
        torch.testing.assert_close(other.embeddings, base.embeddings, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_fast_order_encodes_each_exemplars_own_views(bundle, demo):
    enc = encode(bundle, demo, batch_size=5)
    plan = view_plan(bundle, ViewSpec(num_views=3, seed=11))
    assert plan.defer  # the pipeline makes fast views from crops in the main process, batched across exemplars
    plan = dataclasses.replace(plan, defer=False)  # each exemplar's own views, made alone
    i = 0
    with torch.inference_mode():
        for c, records in enumerate(demo["exemplars"]):
            for e, record in enumerate(records):
                views = plan.prep.normalise(exemplar_input(record, demo["roots"], TTA_CONTEXT, plan, c, e).views)
                expected = torch.stack([bundle.model.encode_image(v[None])[0] for v in views])
                torch.testing.assert_close(enc.embeddings[i], expected, rtol=1e-5, atol=1e-6)
                i += 1


@pytest.mark.slow
def test_original_order_equals_todays_one_view_at_a_time(bundle, demo):
    base = encode(bundle, demo, batch_size=4, order="original")
    # classes 0 and 1 hold the ImageNet and Visual Genome records
    naive = naive_view_embeddings(bundle, demo["exemplars"][:2], demo["roots"], TTA_CONTEXT, 3, 11)
    for c, rows in enumerate(naive):
        torch.testing.assert_close(base.embeddings[base.class_of == c].reshape(-1, rows.shape[1]), rows,
                                   rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(base.class_mean()[c], rows.mean(0), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_plain_views_are_encoded_once_per_item(bundle, demo):
    items = [(0, e, r) for e, r in enumerate(demo["exemplars"][2])]
    enc = encode_items(bundle, items, demo["roots"], ViewSpec(num_views=4, tta=False, workers=0, context=0.2),
                       batch_size=3, progress=False)
    assert enc.embeddings.shape == (len(items), 1, 512) and bool(enc.valid.all())
    naive = naive_view_embeddings(bundle, [demo["exemplars"][2]], demo["roots"], 0.2, 1, 0, tta=False)[0]
    torch.testing.assert_close(enc.embeddings[:, 0], naive, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_padded_sets_hold_each_class_views(bundle, demo):
    enc = encode(bundle, demo, num_views=2)
    sets, mask = enc.padded_sets(repeat=2)
    counts = [len(r) for r in demo["exemplars"]]
    assert sets.shape == (len(counts), max(counts) * 4, 512)
    assert mask.sum(1).tolist() == [k * 4 for k in counts]
    first = enc.embeddings[enc.class_of == 2]  # (k, 2, D)
    expected = first.repeat_interleave(2, dim=1).reshape(-1, 512)
    torch.testing.assert_close(sets[2, : len(expected)], expected, rtol=0, atol=0)


@pytest.mark.slow
def test_bad_images_stop_or_are_skipped(bundle, demo):
    exemplars = [list(r) for r in demo["exemplars"][:3]]
    exemplars[1] = exemplars[1] + [{"dataset": "lvis", "file_name": "val2017/nope.jpg", "bbox": [0, 0, 5, 5]}]
    with pytest.raises(BadImageError, match="nope.jpg: image not found"):
        encode(bundle, demo, exemplars)
    enc = encode(bundle, demo, exemplars, skip_bad=True)
    assert [s["path"].endswith("nope.jpg") for s in enc.skipped] == [True]
    clean = encode(bundle, demo, [exemplars[0], exemplars[1][:-1], exemplars[2]])
    torch.testing.assert_close(enc.class_mean(), clean.class_mean(), rtol=1e-5, atol=1e-6)
    exemplars[2] = [exemplars[1][-1]]
    with pytest.raises(InputError, match="1 class has no readable exemplar left"):
        encode(bundle, demo, exemplars, skip_bad=True)


@pytest.mark.slow
def test_image_tower_only_keeps_image_encoding(demo):
    full = load_tiny(demo)
    image = load_clip(str(demo["root"] / "clip/tiny_clip.json"), str(demo["root"] / "clip/tiny_clip.pt"), "cpu",
                      tower="image")
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        before = full.model.encode_image(x)
        after = image.model.encode_image(x)
    assert image.model.transformer is None and image.model.token_embedding is None
    torch.testing.assert_close(before, after, rtol=0, atol=0)


@pytest.mark.parametrize("workers", [0, 2])
def test_an_invalid_record_is_one_line_from_any_worker(bundle, demo, workers):
    exemplars = [list(demo["exemplars"][0]), [{"dataset": "lvis", "file_name": demo["exemplars"][2][0]["file_name"],
                                               "bbox": [1, 2, "x", 4]}]]
    with pytest.raises(InputError) as info:
        encode(bundle, demo, exemplars, workers=workers)
    assert str(info.value) == f"exemplar record {exemplars[1][0]['file_name']!r}: 'bbox' must be a finite number, found 'x'"
    # the workers are stopped when the error leaves encoding, not later when its traceback is freed (a
    # delayed stop waited 5 s per worker for processes that no longer answered)
    assert not multiprocessing.active_children()


@pytest.mark.slow
def test_ctrl_c_while_the_workers_start_is_raised_once_they_have_started(bundle, demo, monkeypatch):
    """A Ctrl-C landing inside the DataLoader's worker start-up becomes a KeyboardInterrupt after it, so no
    half-built iterator is left to print a traceback when collected; without the hold, the check catches it."""
    real_init, unraisable = dataloader._MultiProcessingDataLoaderIter.__init__, []

    def start_with_ctrl_c(self, loader):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C as the workers start
        real_init(self, loader)
    monkeypatch.setattr(dataloader._MultiProcessingDataLoaderIter, "__init__", start_with_ctrl_c)
    monkeypatch.setattr(sys, "unraisablehook", lambda info: unraisable.append(info.exc_value))
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # Python's own, as in a tool's process
    try:
        with pytest.raises(KeyboardInterrupt):
            encode(bundle, demo, workers=2)
        gc.collect()
        assert unraisable == [] and not multiprocessing.active_children()
        monkeypatch.setattr(image_encoding, "interrupt_held", contextlib.nullcontext)  # the check can fail
        with pytest.raises(KeyboardInterrupt):
            encode(bundle, demo, workers=2)
        gc.collect()
        assert any(isinstance(e, AttributeError) for e in unraisable), unraisable
    finally:
        signal.signal(signal.SIGINT, previous)
