"""The linear map a detector trained with non-CLIP rows would learn: fitted on other classes only, equal to
a naive ridge regression per fold; a map that saw the crop's own class is caught by its higher score."""
import numpy as np

from mmovod.evaluation import linear_map
from mmovod.evaluation.linear_map import FOLDS, RIDGE, cross_fitted


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def world(seed=0, classes=12, per_class=6, dim=5):
    """Crops near their class centre in CLIP's space; rows: the centres under a fixed random linear map."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim))
    labels = np.repeat(np.arange(classes), per_class)
    crops = unit(centres[labels] + 0.3 * rng.normal(size=(len(labels), dim)))
    transform = rng.normal(size=(dim, dim))
    return crops, labels, unit(centres @ transform)


def naive_ridge(x, y):
    """Ridge with an unpenalised bias, as least squares on rows augmented by sqrt(lambda) I (bias column zero)."""
    x1 = np.hstack([x, np.ones((len(x), 1))])
    lam = RIDGE * np.trace(x1.T @ x1) / x1.shape[1]
    penalty = np.sqrt(lam) * np.eye(x1.shape[1])[:-1]
    a = np.vstack([x1, penalty])
    b = np.vstack([y, np.zeros((len(penalty), y.shape[1]))])
    return np.linalg.lstsq(a, b, rcond=None)[0]


def test_each_fold_is_mapped_by_a_ridge_fitted_on_the_other_classes():
    crops, labels, rows = world()
    mapped = cross_fitted(crops, labels, rows)
    classes = np.unique(labels)
    fold_of = np.zeros(len(rows), dtype=int)
    fold_of[classes] = np.random.default_rng(0).permutation(len(classes)) % FOLDS
    for f in range(FOLDS):
        held = fold_of[labels] == f
        assert not set(labels[held]) & set(labels[~held])  # no class on both sides
        w = naive_ridge(crops[~held], rows[labels[~held]])
        np.testing.assert_allclose(mapped[held], unit(np.hstack([crops[held], np.ones((held.sum(), 1))]) @ w), atol=1e-8)


def test_the_map_recovers_a_linear_transform_of_clip_space_and_a_leak_of_the_own_class_is_caught(monkeypatch):
    crops, labels, rows = world(classes=30, per_class=8, dim=6)
    raw = (unit(crops) @ rows.T).argmax(axis=1) == labels
    mapped = (cross_fitted(crops, labels, rows) @ rows.T).argmax(axis=1) == labels
    assert mapped.mean() > 0.8 and mapped.mean() > raw.mean() + 0.3  # rows in another space: raw is poor
    # planted bug: every fold's map fitted on all crops, its own class included
    real_fit = linear_map.fit_map
    monkeypatch.setattr(linear_map, "fit_map", lambda x, y: real_fit(crops, rows[labels]))
    leaked = (cross_fitted(crops, labels, rows) @ rows.T)
    own = leaked[np.arange(len(labels)), labels]
    monkeypatch.undo()
    fair = (cross_fitted(crops, labels, rows) @ rows.T)[np.arange(len(labels)), labels]
    assert own.mean() > fair.mean()


def test_one_class_cannot_be_mapped():
    crops, labels, rows = world(classes=3)
    keep = labels == 1
    assert cross_fitted(crops[keep], labels[keep], rows) is None
