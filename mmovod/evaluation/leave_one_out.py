"""Judge classifiers from their own exemplar photos, without a labelled set: leave-one-out.

For each exemplar (the held-out photo) of a class with at least two readable exemplars, the class's
vision row is rebuilt from its other exemplars (the same reduction the build used: the vision kind's
`held_out` function in the kinds table, e.g. the mean of the views or the visual aggregator over the
set; a kind without one has its rows function run on the class's other exemplars), and the held-out
photo is classified against all rows by cosine, as `eval_classifiers.py` scores a crop. Every other
class's row is built from one photo fewer too (all but its last), so that no class has more photos
behind its row than the held-out photo's own: with the aggregator, whose output depends on the set's
size, rows from sets of different sizes would favour one side (classes with one photo keep it).
A fusion's held-out row is l2(l2(text) + l2(rebuilt vision row)) (the build's fusion,
`mmovod.classifiers.fusion.fused_rows`); a text kind, or a fusion of text kinds, needs no rebuilding
(each photo is classified against its rows). The photo's query is always its raw CLIP embedding (the
L2-normalised mean of the views of `kinds.judge_queries()`, the averaged classifier), as a detector
compares region embeddings with the rows: nothing passes through the aggregator. Kinds whose rows
are not in CLIP's space are judged a second time, "<kind> (mapped)", with each query through a
linear map fitted on the photos of other classes (`mmovod.evaluation.linear_map`): what a detector
trained with those rows would see.
Classes whose row is all zeros (no readable exemplar) are no candidate for the vision kinds.

Classes with fewer than two readable exemplars cannot be judged this way: they are listed, and
every kind is scored on the same held-out photos so that the kinds' numbers compare.
Nothing is encoded here: the inputs are the embeddings the build computed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from tqdm import tqdm

from mmovod.aggregator.model import VisualAggregator
from mmovod.classifiers.fusion import fused_rows
from mmovod.classifiers.kinds import KINDS
from mmovod.clip.image_encoding import ExemplarEmbeddings
from mmovod.evaluation.linear_map import cross_fitted
from mmovod.evaluation.metrics import CropMetrics, crop_metrics

CONFUSIONS = 20
LOOKALIKES = 50


@dataclass(frozen=True)
class JudgedKind:
    """One classifier kind to judge: its built `(C, D)` rows and how a held-out row is rebuilt.

    `vision`: None for a kind whose rows do not come from the photos, else the vision kind of the table
    (`mmovod.classifiers.kinds`) whose held-out rebuild makes the class's vision row (the kind itself, or
    the vision kind a fusion adds); `text`: for such a fusion, the `(C, D)` text rows fused with the vision row;
    `space`: the rows' space (`clip`, or `aggregator`/`mixed` for rows not in CLIP's space).
    """

    name: str
    rows: np.ndarray
    vision: str | None = None
    text: np.ndarray | None = None
    space: str = "clip"


@dataclass
class KindResult:
    """A kind's leave-one-out metrics (over the held-out photos) and each photo's best other class."""

    name: str
    metrics: CropMetrics
    own_score: np.ndarray  # (N,) cosine to the photo's own (held-out) row
    best_other: np.ndarray  # (N,) the highest-scoring other class
    best_other_score: np.ndarray  # (N,)


@dataclass
class LeaveOneOut:
    """Every kind's result on the held-out photos `exemplar_index` (positions in (class, exemplar) order)."""

    class_names: list[str]
    exemplar_index: np.ndarray  # (N,) held-out exemplars, positions in the encoded order
    labels: np.ndarray  # (N,) their classes
    number: np.ndarray  # (N,) their 1-based numbers within their class (as on the report's sheets)
    photos: np.ndarray  # (C,) readable exemplars per class
    kinds: list[KindResult] = field(default_factory=list)

    @property
    def not_judgeable(self) -> list[int]:
        """Classes with exactly one readable photo (a class without any has nothing to judge)."""
        return [int(c) for c in np.flatnonzero(self.photos == 1)]


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, np.finfo(np.float64).tiny)


def without_last(encoded: ExemplarEmbeddings) -> ExemplarEmbeddings:
    """`encoded` with the last valid exemplar of each class with at least two of them marked invalid."""
    valid = encoded.valid.clone()
    class_of = encoded.class_of.numpy()
    counts = np.bincount(class_of[valid.numpy()], minlength=encoded.num_classes)
    for c in np.flatnonzero(counts >= 2):
        valid[int(np.flatnonzero(valid.numpy() & (class_of == c))[-1])] = False
    return ExemplarEmbeddings(encoded.embeddings, valid, encoded.class_of, encoded.num_classes)


def _scores(kind: JudgedKind, query: np.ndarray, labels: np.ndarray, own_rows: np.ndarray | None,
            peers: np.ndarray | None) -> np.ndarray:
    """`(N, C)` cosines of the unit queries against the kind's rows, each photo's own row replaced by its
    held-out one and, for exemplar kinds, every other class's row by `peers` (its row without its last
    photo); rows of zeros (classes without exemplars) score -inf."""
    rows = np.asarray(kind.rows if peers is None else peers, dtype=np.float64)
    if peers is not None and kind.text is not None:
        rows = fused_rows(np.asarray(kind.text, dtype=np.float64), rows)
    scores = query @ _unit(rows).T
    scores[:, ~rows.any(axis=1)] = -np.inf
    if own_rows is not None:
        if kind.text is not None:
            own_rows = _unit(_unit(kind.text[labels]) + _unit(own_rows))
        scores[np.arange(len(labels)), labels] = np.sum(query * _unit(own_rows), axis=1)
    return scores


def _kind_result(name: str, scores: np.ndarray, labels: np.ndarray) -> KindResult:
    rows = np.arange(len(labels))
    own = scores[rows, labels].copy()
    others = scores.copy()
    others[rows, labels] = -np.inf
    best = others.argmax(axis=1) if len(labels) else np.zeros(0, dtype=np.int64)
    return KindResult(name, crop_metrics(scores.astype(np.float32), labels), own.astype(np.float32), best,
                      others[rows, best].astype(np.float32))


def _held_out_one_by_one(rows: Callable[..., np.ndarray], encoded: ExemplarEmbeddings, held_out: np.ndarray,
                         **extra: Any) -> np.ndarray:
    """`(N, D)` float64: for each held-out exemplar, `rows` of its class's other exemplars alone (a kind without
    a `held_out` function of its own)."""
    valid, class_of = encoded.valid.numpy(), encoded.class_of.numpy()
    out = []
    for e in held_out.tolist():
        others = torch.from_numpy(np.flatnonzero(valid & (class_of == class_of[e]) & (np.arange(len(valid)) != e)))
        alone = ExemplarEmbeddings(encoded.embeddings[others], torch.ones(len(others), dtype=torch.bool),
                                   torch.zeros(len(others), dtype=torch.int64), 1)
        out.append(np.asarray(rows(alone, **extra), dtype=np.float64)[0])
    return np.stack(out) if out else np.zeros((0, encoded.embeddings.shape[2]))


def _vision_rows(name: str, views: ExemplarEmbeddings, valid: np.ndarray, held_out: np.ndarray,
                 aggregator: VisualAggregator | None, num_views: int,
                 device: torch.device | str) -> tuple[np.ndarray, np.ndarray]:
    """For the vision kind `name` (`mmovod.classifiers.kinds`): each held-out photo's own row rebuilt without it
    `(N, D)` and every class's row without its last photo `(C, D)` (the peers), from its `views` limited to `valid`."""
    kind = KINDS[name]
    extra: dict[str, Any] = {}
    if "aggregator" in kind.needs:
        if aggregator is None:
            raise ValueError(f"{name}: judging a kind that needs the aggregator needs the aggregator")
        extra = {"aggregator": aggregator, "num_views": num_views, "device": device}
    judged = ExemplarEmbeddings(views.embeddings, torch.from_numpy(valid), views.class_of, views.num_classes)
    rebuild = kind.held_out_rows()
    own = (rebuild(judged, held_out, **extra) if rebuild is not None
           else _held_out_one_by_one(kind.compute(), judged, held_out, **extra))
    return own, np.nan_to_num(np.asarray(kind.compute()(without_last(judged), **extra)).astype(np.float32))


def leave_one_out(class_names: Sequence[str], queries: ExemplarEmbeddings, kinds: Sequence[JudgedKind], *,
                  views: Mapping[str, ExemplarEmbeddings] | None = None, aggregator: VisualAggregator | None = None,
                  num_views: int = 5, device: torch.device | str = "cpu", progress: bool = False) -> LeaveOneOut:
    """Leave-one-out results of every kind in `kinds` (see the module docstring), with a progress bar over the
    kinds when `progress`.

    `queries`: the view embeddings whose mean is each photo's query (those of `kinds.judge_queries()`);
    `views`: by vision kind, the view embeddings its rows are made from (every kind's `vision` among them;
    a photo unreadable in any of them is held out of none); `aggregator`, `num_views`: the aggregator and its
    set size, needed only by vision kinds that need the aggregator.
    """
    views = dict(views or {})
    valid = queries.valid.numpy().copy()
    for name in views:
        valid &= views[name].valid.numpy()
    class_of = queries.class_of.numpy()
    photos = np.bincount(class_of[valid], minlength=queries.num_classes)
    held_out = np.flatnonzero(valid & (photos[class_of] >= 2))
    labels = class_of[held_out]
    number = np.arange(len(class_of)) - np.searchsorted(class_of, class_of) + 1
    result = LeaveOneOut(list(class_names), held_out, labels, number[held_out], photos)
    clip_query = _unit(queries.embeddings.double().numpy()[held_out].mean(axis=1))
    own: dict[str, np.ndarray] = {}
    peers: dict[str, np.ndarray] = {}
    for kind in tqdm(kinds, desc="judge (leave-one-out)", unit="kind", disable=not progress):
        if kind.vision is not None and kind.vision not in own:
            if kind.vision not in views:
                raise ValueError(f"{kind.name}: judging it needs the view embeddings of {kind.vision}")
            own[kind.vision], peers[kind.vision] = _vision_rows(kind.vision, views[kind.vision], valid, held_out,
                                                                aggregator, num_views, device)
        queries_of = {kind.name: clip_query}
        if kind.space != "clip":
            mapped = cross_fitted(clip_query, labels, np.asarray(kind.rows, dtype=np.float64))
            if mapped is not None:
                queries_of[f"{kind.name} (mapped)"] = mapped
        for name, query in queries_of.items():
            scores = _scores(kind, query, labels, own.get(kind.vision) if kind.vision else None,
                             peers.get(kind.vision) if kind.vision else None)
            result.kinds.append(_kind_result(name, scores, labels))
    return result


def _percent(x: float | None) -> float | None:
    return None if x is None else round(100 * x, 2)


def result_document(result: LeaveOneOut, records: Sequence[dict[str, Any]], lookalike_kind: str | None) -> dict[str, Any]:
    """Every number, JSON-ready (accuracies in %): per kind overall and per class top-1/top-5 and the
    confusions; the photos that `lookalike_kind` (a vision kind) puts in another class, by margin.

    `records`: the exemplar records in the encoded (class, exemplar) order."""
    names = result.class_names
    judged = np.zeros(len(names), dtype=np.int64)
    np.add.at(judged, result.labels, 1)
    kinds = {}
    for kind in result.kinds:
        m = kind.metrics
        summary = m.summary()
        top5 = np.bincount(m.labels, weights=m.rank < 5, minlength=len(names))
        kinds[kind.name] = {
            "overall": {"photos": summary["crops"], "classes": summary["classes"], "top1": _percent(summary["top1"]),
                        "top5": _percent(summary["top5"]),
                        "mean_class_top1": _percent(summary["mean_class_accuracy"])},
            "per_class": [None if judged[c] == 0 else {"top1": _percent(float(m.accuracy_per_class[c])),
                                                        "top5": _percent(float(top5[c] / judged[c]))}
                          for c in range(len(names))],
            "confusions": [{"true": names[t], "predicted": names[p], "photos": n}
                           for t, p, n in m.confused_pairs(CONFUSIONS)],
        }
    lookalikes = []
    chosen = next((k for k in result.kinds if k.name == lookalike_kind), None)
    if chosen is not None:
        wrong = np.flatnonzero(chosen.best_other_score > chosen.own_score)
        order = wrong[np.argsort(-(chosen.best_other_score[wrong] - chosen.own_score[wrong]), kind="stable")]
        for i in order[:LOOKALIKES]:
            e = int(result.exemplar_index[i])
            c = int(result.labels[i])
            lookalikes.append({"class": names[c], "image": records[e]["file_name"], "bbox": records[e].get("bbox"),
                               "exemplar": int(result.number[i]), "looks_like": names[int(chosen.best_other[i])],
                               "cosine_own": round(float(chosen.own_score[i]), 4),
                               "cosine_other": round(float(chosen.best_other_score[i]), 4)})
    return {
        "held_out": "each photo of a class with at least two readable photos; its class's rows rebuilt without it",
        "photos_per_class": {names[c]: int(n) for c, n in enumerate(result.photos)},
        "judged_photos_per_class": {names[c]: int(n) for c, n in enumerate(judged)},
        "not_judgeable": [names[c] for c in result.not_judgeable],
        "kinds": kinds,
        "lookalike_kind": lookalike_kind if chosen is not None else None,
        "look_like_another_class": lookalikes,
    }
