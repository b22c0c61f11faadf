"""Judge classifiers from their own exemplar photos, without a labelled set: leave-one-out.

For each exemplar (the held-out photo) of a class with at least two readable exemplars, the class's
vision row is rebuilt from its other exemplars (the same reduction the build used: the mean of the
views, or the visual aggregator over the set), and the held-out photo is classified against all
rows by cosine, as `eval_classifiers.py` scores a crop. Every other class's row is built from one
photo fewer too (all but its last), so that no class has more photos behind its row than the held-out
photo's own: with the aggregator, whose output depends on the set's size, rows from sets of different
sizes would favour one side (classes with one photo keep it).
A fusion's held-out row is l2(l2(text) + l2(rebuilt vision row)) (the build's fusion,
`mmovod.classifiers.fusion.fused_rows`); a text kind needs no rebuilding (each photo is classified
against the text rows). The photo's query is always its raw CLIP embedding (the L2-normalised mean of
the averaged classifier's views), as a detector compares region embeddings with the rows: nothing
passes through the aggregator. Kinds whose rows are not in CLIP's space are judged a second time,
"<kind> (mapped)", with each query through a linear map fitted on the photos of other classes
(`mmovod.evaluation.linear_map`): what a detector trained with those rows would see.
Classes whose row is all zeros (no readable exemplar) are no candidate for the vision kinds.

Classes with fewer than two readable exemplars cannot be judged this way: they are listed, and
every kind is scored on the same held-out photos so that the kinds' numbers compare.
Nothing is encoded here: the inputs are the embeddings the build computed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from mmovod.aggregator.model import VisualAggregator
from mmovod.classifiers.fusion import fused_rows
from mmovod.classifiers.vision import aggregated_classifier, average_classifier
from mmovod.clip.image_encoding import ExemplarEmbeddings
from mmovod.evaluation.linear_map import cross_fitted
from mmovod.evaluation.metrics import CropMetrics, crop_metrics

CONFUSIONS = 20
LOOKALIKES = 50
HELD_OUT_BATCH = 256


@dataclass(frozen=True)
class JudgedKind:
    """One classifier kind to judge: its built `(C, D)` rows and how a held-out row is rebuilt.

    `vision`: None for a text kind, else "average" or "aggregated" (which exemplar reduction makes
    the class's vision row); `text`: for a fusion, the `(C, D)` text rows fused with the vision row;
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


def held_out_average_rows(encoded: ExemplarEmbeddings, held_out: np.ndarray) -> np.ndarray:
    """`(N, D)` float64: for each held-out exemplar, its class's mean view embedding without its own views."""
    views = encoded.embeddings.double().numpy()
    valid = encoded.valid.numpy()
    class_of = encoded.class_of.numpy()
    per_exemplar = views.sum(axis=1) * valid[:, None]
    sums = np.zeros((encoded.num_classes, views.shape[2]))
    np.add.at(sums, class_of, per_exemplar)
    counts = np.bincount(class_of[valid], minlength=encoded.num_classes)
    c = class_of[held_out]
    return (sums[c] - per_exemplar[held_out]) / ((counts[c] - 1) * views.shape[1])[:, None]


@torch.inference_mode()
def held_out_aggregated_rows(encoded: ExemplarEmbeddings, held_out: np.ndarray, aggregator: VisualAggregator,
                             num_views: int, device: torch.device | str = "cpu") -> np.ndarray:
    """`(N, D)` float64: for each held-out exemplar, the aggregator over its class's other exemplars' views
    (each exemplar's views repeated as `aggregated_classifier` repeats them)."""
    repeat = max(1, num_views // encoded.embeddings.shape[1])
    views = encoded.embeddings.repeat_interleave(repeat, dim=1) if repeat > 1 else encoded.embeddings
    per = views.shape[1]
    valid, class_of = encoded.valid.numpy(), encoded.class_of.numpy()
    members = {int(c): np.flatnonzero(valid & (class_of == c)) for c in np.unique(class_of[held_out])}
    size = (max(len(m) for m in members.values()) - 1) * per
    model = aggregator.to(device).eval()
    out = []
    for start in range(0, len(held_out), HELD_OUT_BATCH):
        batch = held_out[start:start + HELD_OUT_BATCH]
        sets = torch.zeros(len(batch), size, views.shape[2])
        mask = torch.zeros(len(batch), size, dtype=torch.bool)
        for b, e in enumerate(batch.tolist()):
            others = [i for i in members[int(class_of[e])] if i != e]
            sets[b, :len(others) * per] = views[others].reshape(-1, views.shape[2])
            mask[b, :len(others) * per] = True
        out.append(model(sets.to(device), mask.to(device)).double().cpu().numpy())
    return np.concatenate(out)


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


def leave_one_out(class_names: Sequence[str], average: ExemplarEmbeddings, kinds: Sequence[JudgedKind], *,
                  aggregated: ExemplarEmbeddings | None = None, aggregator: VisualAggregator | None = None,
                  num_views: int = 5, device: torch.device | str = "cpu") -> LeaveOneOut:
    """Leave-one-out results of every kind in `kinds` (see the module docstring).

    `average`: the averaged classifier's view embeddings (the queries and the "average" held-out rows);
    `aggregated`, `aggregator`, `num_views`: the aggregated classifier's views, the aggregator and its set
    size, needed only by kinds with `vision="aggregated"`.
    """
    valid = average.valid.numpy().copy()
    if aggregated is not None:
        valid &= aggregated.valid.numpy()
    class_of = average.class_of.numpy()
    photos = np.bincount(class_of[valid], minlength=average.num_classes)
    held_out = np.flatnonzero(valid & (photos[class_of] >= 2))
    labels = class_of[held_out]
    number = np.arange(len(class_of)) - np.searchsorted(class_of, class_of) + 1
    result = LeaveOneOut(list(class_names), held_out, labels, number[held_out], photos)
    judged = ExemplarEmbeddings(average.embeddings, torch.from_numpy(valid), average.class_of, average.num_classes)
    clip_query = _unit(average.embeddings.double().numpy()[held_out].mean(axis=1))
    own: dict[str, np.ndarray] = {}
    peers: dict[str, np.ndarray] = {}
    for kind in kinds:
        if kind.vision == "average" and "average" not in own:
            own["average"] = held_out_average_rows(judged, held_out)
            peers["average"] = np.nan_to_num(average_classifier(without_last(judged)))
        if kind.vision == "aggregated" and "aggregated" not in own:
            if aggregated is None or aggregator is None:
                raise ValueError(f"{kind.name}: judging an aggregated kind needs the aggregated views and the aggregator")
            agg = ExemplarEmbeddings(aggregated.embeddings, torch.from_numpy(valid), aggregated.class_of,
                                     aggregated.num_classes)
            own["aggregated"] = held_out_aggregated_rows(agg, held_out, aggregator, num_views, device)
            peers["aggregated"] = np.nan_to_num(aggregated_classifier(without_last(agg), aggregator, num_views,
                                                                      device).astype(np.float32))
        queries = {kind.name: clip_query}
        if kind.space != "clip":
            mapped = cross_fitted(clip_query, labels, np.asarray(kind.rows, dtype=np.float64))
            if mapped is not None:
                queries[f"{kind.name} (mapped)"] = mapped
        for name, query in queries.items():
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
