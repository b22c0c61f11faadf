"""Every evaluation metric against a naive, independent implementation (plain Python loops) on
hand-made embeddings: ties, a class with one crop, a class with none, a perfect and a random classifier."""
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from mmovod.evaluation.metrics import average_precision, crop_metrics, true_class_rank
from mmovod.evaluation.scoring import EvalClassifier, score_crops


# ---- naive references -------------------------------------------------------------------------

def naive_cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def naive_rank(row, label):
    """Position of `label` when classes are sorted by score descending, then by index ascending."""
    order = sorted(range(len(row)), key=lambda c: (-row[c], c))
    return order.index(label)


def naive_ap(column, positive):
    """AP as the area under the precision-recall step curve over distinct thresholds (scikit-learn's
    definition): sum over thresholds t (descending) of (recall(t) - recall(previous t)) * precision(t)."""
    n_pos = sum(positive)
    if n_pos == 0:
        return float("nan")
    ap, previous_recall = 0.0, 0.0
    for t in sorted(set(column), reverse=True):
        selected = [p for s, p in zip(column, positive) if s >= t]
        recall = sum(selected) / n_pos
        ap += (recall - previous_recall) * (sum(selected) / len(selected))
        previous_recall = recall
    return ap


def naive_metrics(scores, labels, num_classes):
    scores = [[float(v) for v in row] for row in scores]
    ranks = [naive_rank(row, lab) for row, lab in zip(scores, labels)]
    per_class_acc, aps, counts = [], [], []
    for c in range(num_classes):
        members = [i for i, lab in enumerate(labels) if lab == c]
        counts.append(len(members))
        per_class_acc.append(sum(ranks[i] == 0 for i in members) / len(members) if members else float("nan"))
        aps.append(naive_ap([row[c] for row in scores], [lab == c for lab in labels]))
    have = [c for c in range(num_classes) if counts[c]]
    predicted = [min(range(num_classes), key=lambda c: (-row[c], c)) for row in scores]
    pairs = Counter((lab, p) for lab, p in zip(labels, predicted) if lab != p)
    confused = sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0][0], kv[0][1]))
    return {
        "ranks": ranks, "ap": aps, "accuracy": per_class_acc, "counts": counts,
        "top1": sum(r == 0 for r in ranks) / len(ranks), "top5": sum(r < 5 for r in ranks) / len(ranks),
        "mean_class_accuracy": sum(per_class_acc[c] for c in have) / len(have),
        "map": sum(aps[c] for c in have) / len(have),
        "confused": [(t, p, n) for (t, p), n in confused],
    }


def check_against_naive(scores, labels):
    num_classes = scores.shape[1]
    ours = crop_metrics(scores, labels)
    ref = naive_metrics(scores, list(labels), num_classes)
    assert ours.rank.tolist() == ref["ranks"]
    np.testing.assert_allclose(ours.ap, ref["ap"], rtol=1e-9, equal_nan=True)
    np.testing.assert_allclose(ours.accuracy_per_class, ref["accuracy"], equal_nan=True)
    assert ours.crops_per_class.tolist() == ref["counts"]
    summary = ours.summary()
    for key in ("top1", "top5", "mean_class_accuracy", "map"):
        assert summary[key] == pytest.approx(ref[key], rel=1e-12), key
    assert ours.confused_pairs(20) == ref["confused"][:20]
    return ours, ref


# ---- hand-worked cases ------------------------------------------------------------------------

def test_ap_hand_worked():
    # positives at scores 0.9 and 0.7, a negative at 0.8: (1/1 + 2/3) / 2
    scores = np.array([[0.9, 0.0], [0.8, 1.0], [0.7, 0.0]], dtype=np.float32)
    assert average_precision(scores, np.array([0, 1, 0]))[0] == pytest.approx((1 + 2 / 3) / 2)
    # a negative tied with the top positive: both share precision 1/2 at 0.9; then 2/3 at 0.5
    scores = np.array([[0.9, 0.0], [0.9, 1.0], [0.5, 0.0]], dtype=np.float32)
    assert average_precision(scores, np.array([0, 1, 0]))[0] == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)
    # class 1 ranks its only crop first: AP 1
    assert average_precision(scores, np.array([0, 1, 0]))[1] == pytest.approx(1.0)


def test_rank_ties_go_to_lower_class_index():
    scores = np.array([[0.5, 0.5, 0.1], [0.5, 0.5, 0.1], [0.2, 0.2, 0.2]], dtype=np.float32)
    labels = np.array([0, 1, 2])
    assert true_class_rank(scores, labels).tolist() == [0, 1, 2]
    m = crop_metrics(scores, labels)
    assert m.predicted.tolist() == [0, 0, 0]
    assert m.summary()["top1"] == pytest.approx(1 / 3)


# ---- hand-made embeddings through the scoring path ---------------------------------------------

def classifier(rows, ids=None):
    rows = np.asarray(rows, dtype=np.float32)
    unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return EvalClassifier(Path("x.npy"), "x", unit, list(ids or range(len(rows))), None, None)


def embeddings_scene():
    """5 classes in 4-d: class 3 has one crop, class 4 none; classes 1 and 2 have identical rows (ties);
    crops are unnormalised so scoring must normalise them."""
    rows = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1], [0, 0, 0, 1]]
    crops = [[2, 0.1, 0, 0], [3, 0, 0.2, 0], [0.1, 5, 0, 0], [0, 1, 0.1, 0], [0.2, 0.4, 0, 0],
             [0, 2, 0, 0], [0, 0, 3, 3], [0.5, 0.5, 0.5, 0.5]]
    cats = [0, 0, 1, 1, 2, 2, 3, 0]
    return rows, np.array(crops, dtype=np.float32), np.array(cats)


def test_scoring_is_the_cosine():
    rows, crops, cats = embeddings_scene()
    unit_crops = crops / np.linalg.norm(crops, axis=1, keepdims=True)
    aligned = score_crops(classifier(rows), unit_crops, cats)
    for i, crop in enumerate(crops.tolist()):
        for c, row in enumerate(rows):
            assert aligned.scores[i, c] == pytest.approx(naive_cosine(crop, row), abs=1e-6)


def test_metrics_match_naive_with_ties_single_and_empty_class():
    rows, crops, cats = embeddings_scene()
    unit_crops = crops / np.linalg.norm(crops, axis=1, keepdims=True)
    aligned = score_crops(classifier(rows), unit_crops, cats)
    ours, ref = check_against_naive(aligned.scores, aligned.labels)
    assert np.isnan(ours.ap[4]) and ours.crops_per_class[4] == 0  # the class without crops
    assert ours.crops_per_class[3] == 1 and ours.ap[3] == pytest.approx(1.0)  # one crop, ranked first
    # classes 1 and 2 share a row: every crop of class 2 loses the tie to class 1
    assert ours.accuracy_per_class[2] == 0.0 and ours.rank[4] == 1
    assert (1, 2, 0) not in ours.confused_pairs() and ours.confused_pairs()[0] == (2, 1, 2)


def test_perfect_classifier_scores_one():
    rng = np.random.default_rng(0)
    rows = np.eye(6, 16, dtype=np.float32)
    labels = np.repeat(np.arange(5), [1, 2, 3, 4, 5])  # class 5 has no crops
    crops = rows[labels] * rng.uniform(0.5, 2, (len(labels), 1)).astype(np.float32)
    aligned = score_crops(classifier(rows), crops / np.linalg.norm(crops, axis=1, keepdims=True), labels)
    ours, _ = check_against_naive(aligned.scores, aligned.labels)
    assert ours.summary() == {"crops": 15, "classes": 5, "top1": 1.0, "top5": 1.0, "mean_class_accuracy": 1.0, "map": 1.0}
    assert ours.confused_pairs() == []


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_classifier_matches_naive(seed):
    rng = np.random.default_rng(seed)
    num_classes = 12
    labels = rng.integers(0, num_classes - 2, 90)  # the last two classes get no crops
    labels[:3] = [0, 0, 1]
    scores = rng.standard_normal((90, num_classes)).astype(np.float32)
    scores[5:15] = np.round(scores[5:15], 1)  # many exact ties
    ours, _ = check_against_naive(scores, labels)
    assert 0 <= ours.summary()["map"] < 0.5


def test_group_summary_uses_only_its_classes():
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(4), 5)
    scores = rng.standard_normal((20, 4)).astype(np.float32)
    m = crop_metrics(scores, labels)
    group = np.array([True, False, True, False])
    sub = m.summary(group)
    keep = np.isin(labels, [0, 2])
    assert sub["crops"] == 10 and sub["classes"] == 2
    assert sub["top1"] == pytest.approx(np.mean(m.rank[keep] == 0))
    assert sub["map"] == pytest.approx((m.ap[0] + m.ap[2]) / 2)
    assert m.summary(np.zeros(4, bool))["map"] is None


def test_chunked_computation_equals_one_block():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 30, 500)
    scores = rng.standard_normal((500, 30)).astype(np.float32)
    np.testing.assert_array_equal(true_class_rank(scores, labels, chunk=7), true_class_rank(scores, labels))
    np.testing.assert_array_equal(average_precision(scores, labels, chunk=4), average_precision(scores, labels))
