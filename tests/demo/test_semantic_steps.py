"""Semantic tier, one pipeline step at a time: on the shipped world CLIP and held-out scenes and photos of the
demo world (`tests.semantic_world`), each step's number reaches its stated floor, and a slip planted in the
library for the test (monkeypatch, never in the code) brings it below, in the same test.

The world CLIP is robust: a dropped prompt template, one exemplar instead of three, identical TTA views or
a fusion of unnormalised rows cost it almost nothing in top-1 (90-93% either way on these crops), so those
steps are checked where the slip shows: the rows against the prompt's own embedding, exemplar sets whose
first photo is a decoy, the spread of an exemplar's views, a fusion whose parts come at different scales,
leave-one-out against the in-sample accuracy, and the aggregated rows against the averaged rows of the
same exemplars (raw crops, as a detector scores). A new step is one more `Step` in STEPS.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import mmovod.classifiers.fusion as fusion
import mmovod.classifiers.text as text
import mmovod.classifiers.text_inputs as text_inputs
import mmovod.classifiers.vision as vision
import mmovod.clip.crops as crops
import mmovod.clip.exemplar_views as exemplar_views
import mmovod.evaluation.leave_one_out as leave_one_out
import mmovod.readers.exemplar_records as exemplar_records
from mmovod.clip.image_encoding import encode_exemplars
from mmovod.clip.specs import ClipSpec, ViewSpec
from mmovod.aggregator.model import VisualAggregator, build_model
from mmovod.aggregator.train_config import TrainConfig
from mmovod.clip.crops import AGGREGATOR_CONTEXT
from mmovod.demo.world_models import world_aggregator_path, world_clip_paths
from mmovod.evaluation.crops_from_annotations import Category
from mmovod.evaluation.scoring import load_classifiers, score_crops
from tests.semantic_world import EVAL_PER_CLASS, Step, World, make_world, unit

CLASSIFIES = 0.60  # top-1 a working step reaches on 40 classes (chance 2.5%)
SAME_ROWS = 0.9999  # cosine of a row with the embedding its recipe names
DISTINCT_VIEWS = 0.01  # 1 - mean cosine between the TTA views of one exemplar (about 0.03 measured)
FUSION_MARGIN = 0.10  # how far below its better part a fusion may score
LEAVE_ONE_OUT_GAP = 0.05  # how far below the in-sample top-1 the held-out top-1 lies at least
CROPS_FOR_ENCODING_STEPS = 2  # crops per class encoded again by the steps that re-encode (80 crops)
VIEWS = 5
AGGREGATOR_MARGIN = 0.05  # how far below the averaged rows of the same exemplars the aggregated rows may score


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> World:
    """The held-out world and its unbroken embeddings, made once per session (about 1 s); read-only."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the world CLIP is tiny: one thread is fastest and leaves the other cores alone
    try:
        return make_world(tmp_path_factory.mktemp("semantic_world"))
    finally:
        torch.set_num_threads(before)


# --- prompt template ----------------------------------------------------------------------------------

def prompt_rows(world: World) -> tuple[float, float]:
    """The text classifier's rows against CLIP's embedding of Detic's prompt "a <name>", encoded here directly."""
    rows = text.text_classifier(world.names, world.bundle)
    with torch.inference_mode():
        expected = world.bundle.model.encode_text(world.bundle.tokenizer([f"a {n}" for n in world.names]))
    return float(np.min(np.sum(unit(rows) * unit(expected.numpy()), axis=1))), SAME_ROWS


def drop_the_template(mp: pytest.MonkeyPatch, world: World) -> None:
    mp.setattr(text, "prompt_sentences", lambda names, prompt="a", synonyms=None: [[n] for n in names])


def alter_the_template(mp: pytest.MonkeyPatch, world: World) -> None:
    mp.setitem(text_inputs.PROMPTS, "a", "a photo of a {}")


# --- class order: rows against the sidecar's category ids ---------------------------------------------

def rows_by_category_id(world: World) -> tuple[float, float]:
    """A text classifier written by its tool's function (categories listed out of id order in the file) and
    scored by the evaluation, which matches its rows to the crops' categories through the sidecar."""
    folder = Path(tempfile.mkdtemp(dir=world.root))
    cats = world.categories[::-1]
    (folder / "ann.json").write_text(json.dumps({"categories": cats}))
    config, weights = world_clip_paths()
    text.write_prompt_classifier(folder / "ann.json", folder / "text.npy", ClipSpec(str(config), str(weights), "cpu"))
    [classifier], _ = load_classifiers([folder / "text.npy"],
                                       [Category(c["id"], c["name"], synonyms=tuple(c["synonyms"])) for c in cats])
    crop_ids = np.array([world.categories[c]["id"] for c in world.labels])
    aligned = score_crops(classifier, world.crop_embeddings.astype(np.float32), crop_ids)
    return float((aligned.scores.argmax(axis=1) == aligned.labels).mean()), CLASSIFIES


def shuffle_the_rows(mp: pytest.MonkeyPatch, world: World) -> None:
    original = text.encode_class_means

    def encode_class_means(*args, **kwargs):
        rows = original(*args, **kwargs)
        return rows[np.random.default_rng(0).permutation(len(rows))]
    mp.setattr(text, "encode_class_means", encode_class_means)


# --- crops: box format and channel order --------------------------------------------------------------

def crops_encoded_now(world: World) -> tuple[float, float]:
    """Crops cut from their images and encoded now, against the text rows."""
    return world.top1(world.text_rows, world.encode_crops(CROPS_FOR_ENCODING_STEPS)), CLASSIFIES


def read_boxes_as_corners(mp: pytest.MonkeyPatch, world: World) -> None:
    original = exemplar_records.record_box

    def record_box(record):
        x, y, w, h = original(record)
        return x, y, max(1, w - x), max(1, h - y)  # [x, y, w, h] read as [x1, y1, x2, y2]
    mp.setattr(exemplar_records, "record_box", record_box)


def read_images_as_bgr(mp: pytest.MonkeyPatch, world: World) -> None:
    original = crops.decode_image

    def decode_image(path, reduction=None):
        decoded = original(path, reduction)
        r, g, b = decoded.image.split()
        return type(decoded)(Image.merge("RGB", (b, g, r)), decoded.full_size, decoded.reduction, decoded.origin)
    mp.setattr(crops, "decode_image", decode_image)
    mp.setattr(exemplar_views, "decode_image", decode_image)


# --- every exemplar used --------------------------------------------------------------------------------

def exemplar_rows_with_a_decoy_first(world: World) -> tuple[float, float]:
    """The averaged classifier of sets whose first exemplar is a decoy (the next class's box) before the
    class's own three: the three outweigh it only when every exemplar is used."""
    sets = [[world.exemplars[(c + 1) % len(world.names)][0], *own] for c, own in enumerate(world.exemplars)]
    rows = vision.exemplar_classifier(sets, world.bundle, ViewSpec(num_views=1, tta=False, workers=0), world.roots)
    return world.top1(rows), CLASSIFIES


def use_the_first_exemplar_only(mp: pytest.MonkeyPatch, world: World) -> None:
    original = vision.encode_exemplar_views
    mp.setattr(vision, "encode_exemplar_views",
               lambda exemplars, *args, **kwargs: original([e[:1] for e in exemplars], *args, **kwargs))


# --- distinct TTA views --------------------------------------------------------------------------------

def view_spread(world: World) -> tuple[float, float]:
    """1 - the mean cosine between two TTA views of one exemplar (one exemplar per class, VIEWS views)."""
    encoded = encode_exemplars(world.bundle, [e[:1] for e in world.exemplars], world.roots,
                               ViewSpec(num_views=VIEWS, workers=0), progress=False)
    views = unit(encoded.embeddings.numpy())
    cosines = np.einsum("evd,ewd->evw", views, views)[:, ~np.eye(VIEWS, dtype=bool)]
    return 1 - float(cosines.mean()), DISTINCT_VIEWS


def make_every_view_the_first(mp: pytest.MonkeyPatch, world: World) -> None:
    original = exemplar_views.draw_view_params
    mp.setattr(exemplar_views, "draw_view_params",
               lambda width, height, seed, c, e, v: original(width, height, seed, c, e, 0))


# --- fusion normalised ----------------------------------------------------------------------------------

def fusion_against_its_parts(world: World) -> tuple[float, float]:
    """The fusion of the text rows (93% here) and a weaker vision part (one photo per class, about 60%) passed
    at ten times its scale (a classifier's scale means nothing to a detector, which normalises every row;
    the kinds come at different scales) must not score more than FUSION_MARGIN below its better part."""
    photos = world.photo_embeddings
    first = np.flatnonzero(np.r_[True, photos.class_of.numpy()[1:] != photos.class_of.numpy()[:-1]])
    vision_rows = 10 * photos.embeddings.numpy()[first, 0]
    fused = fusion.fuse_classifiers(world.text_rows, vision_rows)
    return world.top1(fused), max(world.top1(world.text_rows), world.top1(vision_rows)) - FUSION_MARGIN


def fuse_without_normalising(mp: pytest.MonkeyPatch, world: World) -> None:
    mp.setattr(fusion, "l2_normalise_rows", lambda array: np.asarray(array, dtype=np.float64))


# --- leave-one-out excludes the photo -------------------------------------------------------------------

def held_out_below_in_sample(world: World) -> tuple[float, float]:
    """Leave-one-out top-1 of the averaged classifier on the photos (3 per class) must lie LEAVE_ONE_OUT_GAP
    or more below the in-sample top-1 (each photo against rows that include it)."""
    photos = world.photo_embeddings
    rows = np.nan_to_num(vision.average_classifier(photos))
    judged = leave_one_out.leave_one_out(world.names, photos, [leave_one_out.JudgedKind("average", rows,
                                                                                        vision="vision-average")],
                                         views={"vision-average": photos})
    queries = unit(photos.embeddings.numpy().mean(axis=1))
    in_sample = float(((queries @ unit(rows).T).argmax(axis=1) == photos.class_of.numpy()).mean())
    return in_sample - judged.kinds[0].metrics.summary()["top1"], LEAVE_ONE_OUT_GAP


def keep_the_photo_in(mp: pytest.MonkeyPatch, world: World) -> None:
    mp.setattr(vision, "held_out_average_rows",
               lambda encoded, held_out: encoded.class_mean().double().numpy()[encoded.class_of.numpy()[held_out]])


# --- the aggregator: fed raw embeddings, its rows useful against raw crops -----------------------------

AGGREGATOR_VIEWS = ViewSpec(num_views=2, tta=True, context=AGGREGATOR_CONTEXT, workers=0)


def aggregated_top1(world: World) -> float:
    """Top-1 of raw crops against the world aggregator's rows over each class's exemplars (2 TTA views)."""
    aggregator = VisualAggregator.from_checkpoint(world_aggregator_path())
    rows = vision.exemplar_classifier(world.exemplars, world.bundle, AGGREGATOR_VIEWS, world.roots, aggregator=aggregator)
    return world.top1(rows.astype(np.float32))


def aggregated_against_averaged(world: World) -> tuple[float, float]:
    """The aggregated rows classify raw crops (as a detector compares regions) at least as well as the averaged
    rows of the same exemplars and views, less AGGREGATOR_MARGIN."""
    averaged = vision.exemplar_classifier(world.exemplars, world.bundle, AGGREGATOR_VIEWS, world.roots)
    return aggregated_top1(world), world.top1(averaged) - AGGREGATOR_MARGIN


def feed_normalised_embeddings(mp: pytest.MonkeyPatch, world: World) -> None:
    original = vision.aggregate_sets
    mp.setattr(vision, "aggregate_sets", lambda aggregator, sets, *args, **kwargs:
               original(aggregator, torch.nn.functional.normalize(sets, dim=-1), *args, **kwargs))


def use_an_untrained_aggregator(mp: pytest.MonkeyPatch, world: World) -> None:
    """Rows of an aggregator that never learned CLIP's space (its initial weights)."""
    untrained = build_model(TrainConfig(num_layers=4), world.bundle.embed_dim)
    mp.setattr(VisualAggregator, "from_checkpoint", classmethod(lambda cls, *args, **kwargs: untrained.eval()))


STEPS = {
    "prompt template dropped": Step(prompt_rows, drop_the_template, f"row cosine >= {SAME_ROWS}"),
    "prompt template altered": Step(prompt_rows, alter_the_template, f"row cosine >= {SAME_ROWS}"),
    "rows shuffled against their category ids": Step(rows_by_category_id, shuffle_the_rows, f"top-1 >= {CLASSIFIES}"),
    "boxes read as x1,y1,x2,y2": Step(crops_encoded_now, read_boxes_as_corners, f"top-1 >= {CLASSIFIES}"),
    "images read as BGR": Step(crops_encoded_now, read_images_as_bgr, f"top-1 >= {CLASSIFIES}"),
    "only the first exemplar used": Step(exemplar_rows_with_a_decoy_first, use_the_first_exemplar_only,
                                         f"top-1 >= {CLASSIFIES}"),
    "identical TTA views": Step(view_spread, make_every_view_the_first, f"1 - view cosine >= {DISTINCT_VIEWS}"),
    "fusion without normalising its parts": Step(fusion_against_its_parts, fuse_without_normalising,
                                                 f"top-1 >= better part - {FUSION_MARGIN}"),
    "leave-one-out keeping the photo in": Step(held_out_below_in_sample, keep_the_photo_in,
                                               f"in-sample - held-out top-1 >= {LEAVE_ONE_OUT_GAP}"),
    "aggregator fed L2-normalised embeddings": Step(aggregated_against_averaged, feed_normalised_embeddings,
                                                    f"top-1 >= averaged - {AGGREGATOR_MARGIN}"),
    "aggregated rows not in CLIP's space": Step(aggregated_against_averaged, use_an_untrained_aggregator,
                                                f"top-1 >= averaged - {AGGREGATOR_MARGIN}"),
}


@pytest.mark.parametrize("slip", list(STEPS))
def test_the_step_works_and_its_slip_is_caught(world, slip, one_thread):
    step = STEPS[slip]
    good, floor = step.check(world)
    assert good >= floor, f"unbroken, {step.floor}: {good:.4f} < {floor:.4f}"
    with pytest.MonkeyPatch.context() as mp:
        step.plant(mp, world)
        broken, broken_floor = step.check(world)
    assert broken < broken_floor, f"{slip} not caught, {step.floor}: {broken:.4f} >= {broken_floor:.4f}"


def test_the_world_is_held_out_and_classifiable(world):
    """The crops are the classes' own (text rows classify them far above chance) and the exemplars come from
    other scenes than the crops."""
    assert world.crop_embeddings.shape[0] == EVAL_PER_CLASS * len(world.names)
    assert world.top1(world.text_rows) >= CLASSIFIES
    crop_files = {r["file_name"] for c in world.crops for r in c}
    assert not crop_files & {r["file_name"] for c in world.exemplars for r in c}
