"""Leave-one-out judging: every kind's numbers equal a naive loop that rebuilds the classifier without each
photo with the build's own functions; not holding the photo out is caught; single-photo classes are not judged."""
import numpy as np
import pytest
import torch

from mmovod.aggregator.model import VisualAggregator
from mmovod.classifiers import vision
from mmovod.classifiers.kinds import ClassifierKind, register_kind, unregister_kind
from mmovod.classifiers.vision import aggregated_classifier, average_classifier
from mmovod.clip.image_encoding import ExemplarEmbeddings
from mmovod.evaluation.leave_one_out import JudgedKind, leave_one_out, result_document


def unit(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-300)


def fuse(text, vision):
    """The build's fusion, written out: l2(l2(text) + l2(vision)); for a zero vision row the vision direction is
    l2(l2(text) + mean over the other rows of (l2(vision) - l2(text)))."""
    has = np.abs(vision).sum(axis=1) > 0
    gap = np.mean([unit(vision[i]) - unit(text[i]) for i in np.flatnonzero(has)], axis=0)
    return np.stack([unit(unit(text[i]) + (unit(vision[i]) if has[i] else unit(unit(text[i]) + gap)))
                     for i in range(len(text))])


@pytest.fixture
def case():
    """4 classes: 3, 2, 1 and 0 photos (the third photo of class 0 unreadable), 2 views, 8-d."""
    rng = np.random.default_rng(0)
    counts = [4, 2, 1, 0]
    class_of = torch.tensor([c for c, n in enumerate(counts) for _ in range(n)])
    centres = rng.normal(size=(4, 8))
    views = torch.tensor(centres[class_of.numpy()][:, None] + 3.0 * rng.normal(size=(len(class_of), 2, 8)),
                         dtype=torch.float32)
    valid = torch.ones(len(class_of), dtype=torch.bool)
    valid[2] = False
    average = ExemplarEmbeddings(views, valid, class_of, 4)
    aggregated = ExemplarEmbeddings(views * 0.5 + 0.1, valid, class_of, 4)
    torch.manual_seed(0)
    aggregator = VisualAggregator(dim=8, num_layers=1, num_heads=2).eval()
    text = rng.normal(size=(4, 8)).astype(np.float32)
    avg_rows = np.nan_to_num(average_classifier(average))
    agg_rows = np.nan_to_num(aggregated_classifier(aggregated, aggregator, 2).astype(np.float32))
    kinds = [JudgedKind("text", text), JudgedKind("avg", avg_rows, vision="vision-average"),
             JudgedKind("agg", agg_rows, vision="vision-aggregated", space="aggregator"),
             JudgedKind("mm-avg", fuse(text, avg_rows), vision="vision-average", text=text),
             JudgedKind("mm-agg", fuse(text, agg_rows), vision="vision-aggregated", text=text)]
    return {"average": average, "aggregated": aggregated, "aggregator": aggregator, "text": text, "kinds": kinds}


def naive(case, kind):
    """Per held-out photo: (true class, predicted class, rank of the true class), by rebuilding everything."""
    average, aggregated, aggregator, text = case["average"], case["aggregated"], case["aggregator"], case["text"]
    out = []
    for e in range(len(average.valid)):
        c = int(average.class_of[e])
        if not average.valid[e] or int(average.valid[average.class_of == c].sum()) < 2:
            continue
        without = average.valid.clone()
        without[e] = False
        for other in range(4):  # every other class: all but its last readable photo
            members = [i for i in range(len(without)) if int(average.class_of[i]) == other and without[i]]
            if other != c and len(members) >= 2:
                without[members[-1]] = False
        if kind in ("avg", "mm-avg"):
            rows = np.nan_to_num(average_classifier(ExemplarEmbeddings(average.embeddings, without, average.class_of, 4)))
        elif kind in ("agg", "mm-agg"):
            rows = aggregated_classifier(ExemplarEmbeddings(aggregated.embeddings, without, aggregated.class_of, 4),
                                         aggregator, 2).astype(np.float32)
            rows = np.nan_to_num(rows)
        else:
            rows = text
        if kind.startswith("mm-"):
            rows = fuse(text, rows)
        query = average.embeddings[e].double().numpy().mean(axis=0)  # raw, for every kind
        scores = unit(rows) @ unit(query)
        if kind in ("avg", "agg"):
            scores[np.abs(rows).sum(axis=1) == 0] = -np.inf
        order = sorted(range(4), key=lambda j: (-scores[j], j))
        out.append((c, order[0], order.index(c)))
    return out


def test_every_kind_matches_a_naive_rebuild_per_photo(case):
    views = {"vision-average": case["average"], "vision-aggregated": case["aggregated"]}
    result = leave_one_out(["a", "b", "c", "d"], case["average"], case["kinds"], views=views,
                           aggregator=case["aggregator"], num_views=2)
    assert result.exemplar_index.tolist() == [0, 1, 3, 4, 5]  # the unreadable photo and the lone photo are out
    assert result.number.tolist() == [1, 2, 4, 1, 2]
    assert result.not_judgeable == [2]
    assert [k.name for k in result.kinds] == ["text", "avg", "agg", "agg (mapped)", "mm-avg", "mm-agg"]
    for kind in result.kinds:
        if kind.name.endswith("(mapped)"):  # the map itself: tests/evaluation/test_linear_map.py
            continue
        expected = naive(case, kind.name)
        assert kind.metrics.labels.tolist() == [t for t, _, _ in expected], kind.name
        assert kind.metrics.predicted.tolist() == [p for _, p, _ in expected], kind.name
        assert kind.metrics.rank.tolist() == [r for _, _, r in expected], kind.name
    doc = result_document(result, [{"file_name": f"{i}.jpg"} for i in range(7)], "avg")
    assert doc["not_judgeable"] == ["c"]
    for kind in result.kinds[:3]:
        expected = naive(case, kind.name)
        assert doc["kinds"][kind.name]["overall"]["top1"] == round(100 * np.mean([p == t for t, p, _ in expected]), 2)
        per_class = doc["kinds"][kind.name]["per_class"]
        assert per_class[2] is None and per_class[3] is None
        a = [p == t for t, p, _ in expected if t == 0]
        assert per_class[0]["top1"] == round(100 * np.mean(a), 2)
    looks = doc["look_like_another_class"]
    wrong = [(t, p) for t, p, _ in naive(case, "avg") if t != p]
    assert wrong and len(wrong) < 5  # the case has right and wrong photos
    assert sorted((x["class"], x["looks_like"]) for x in looks) == sorted(("abcd"[t], "abcd"[p]) for t, p in wrong)


def test_not_holding_the_photo_out_raises_the_score(case, monkeypatch):
    """A photo counted in its own class's row pulls that row towards it: the mutation must score higher."""
    kinds = [k for k in case["kinds"] if k.name == "avg"]
    views = {"vision-average": case["average"]}
    honest = leave_one_out(["a", "b", "c", "d"], case["average"], kinds, views=views).kinds[0]
    full = np.nan_to_num(average_classifier(case["average"])).astype(np.float64)
    monkeypatch.setattr(vision, "held_out_average_rows", lambda encoded, held_out: full[encoded.class_of.numpy()[held_out]])
    cheating = leave_one_out(["a", "b", "c", "d"], case["average"], kinds, views=views).kinds[0]
    assert (cheating.own_score > honest.own_score).all()
    assert cheating.metrics.summary()["top1"] > honest.metrics.summary()["top1"]


def test_a_vision_kind_without_its_own_held_out_rebuild_is_judged_by_running_its_rows_per_photo(case):
    """A registered vision kind with no `held_out` function: its rows function on each class's other photos
    gives exactly the numbers of the averaged kind's fast rebuild (and so of the naive loop above)."""
    register_kind(ClassifierKind("vision-mean", "clip", "float32", ("exemplars",), "mean", (), rows=average_classifier))
    try:
        avg_rows = case["kinds"][1].rows
        views = {"vision-average": case["average"], "vision-mean": case["average"]}
        result = leave_one_out(["a", "b", "c", "d"], case["average"],
                               [JudgedKind("avg", avg_rows, vision="vision-average"),
                                JudgedKind("mean", avg_rows, vision="vision-mean")], views=views)
    finally:
        unregister_kind("vision-mean")
    fast, generic = result.kinds
    np.testing.assert_allclose(generic.own_score, fast.own_score, rtol=1e-5)
    assert generic.metrics.rank.tolist() == fast.metrics.rank.tolist()
