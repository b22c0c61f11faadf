"""The classifiers under evaluation: read, checked against each other and the annotation file, and scored.

Scoring is Detic's zero-shot head on a perfect proposal: the cosine between the L2-normalised crop
embedding and every L2-normalised class row, as a detector compares its region embeddings with the
rows; nothing passes a crop through the visual aggregator. Rows that are not in CLIP's space (the
authors' aggregated files, aggregators trained for their own space) are scored a second time through
a linear map fitted on the other classes' crops (`mmovod.evaluation.linear_map`, `scored_ways`). Rows are matched to categories by the sidecar's
`category_ids` (those of a fusion's sources for the old fusion sidecar), else by its class names and
synonyms, else by order (`mmovod.evaluation.class_matching`). All-zero rows (classes without
exemplars in a vision classifier) are left out of the scores and listed.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Iterator, Sequence

import numpy as np

from mmovod.classifiers.sidecar import ClassifierSidecar, load_classifier, parse_sidecar
from mmovod.classifiers.sidecar_files import located_input
from mmovod.clip.identity import content_key, locate
from mmovod.evaluation.class_matching import RowMatch, match_rows
from mmovod.evaluation.crops_from_annotations import Category
from mmovod.evaluation.linear_map import cross_fitted
from mmovod.io.errors import InputError
from mmovod.io.json_files import load_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClipIdentity:
    """The CLIP that made a classifier: model name and weights as its sidecar (or the flags) spell them,
    located from here (`mmovod.clip.identity.locate`), and compared by content (`content_key`)."""

    clip_model: str
    pretrained: str | None
    files: dict[str, Any] | None = field(default=None, compare=False)  # the sidecar's details.clip_files

    def describe(self) -> str:
        return f"{self.clip_model} ({self.pretrained or 'default weights'})"

    def same_as(self, other: "ClipIdentity") -> bool:
        return content_key(self.clip_model, self.pretrained, self.files) == \
            content_key(other.clip_model, other.pretrained, other.files)


def _clip_from_sidecar(sidecar: ClassifierSidecar, where: str) -> ClipIdentity:
    """The sidecar's CLIP, its files found from here: as recorded, else relative to the sidecar's folder."""
    files = sidecar.details.get("clip_files")
    files = files if isinstance(files, dict) else {}
    folder = Path(where).parent
    return ClipIdentity(locate(sidecar.clip_model, files.get("clip_model"), folder),
                        locate(sidecar.pretrained, files.get("pretrained"), folder), files)


@dataclass
class EvalClassifier:
    """One classifier, ready to score: unit rows `(C, D)` float32 and the category id of each row."""

    path: Path
    name: str
    rows: np.ndarray
    category_ids: list[int]
    sidecar: ClassifierSidecar | None
    clip: ClipIdentity | None
    space: str = "clip"
    match: RowMatch | None = None
    left_out: list[str] = field(default_factory=list)  # classes whose row is all zeros

    @property
    def kind(self) -> str:
        return self.sidecar.kind if self.sidecar is not None else "unknown (no sidecar)"

    @property
    def aggregator_layers(self) -> int | None:
        """The aggregator's layer count recorded in the sidecar, if any."""
        layers = self.sidecar.details.get("num_layers") if self.sidecar is not None else None
        return layers if isinstance(layers, int) else None


def source_sidecars(sidecar: ClassifierSidecar, where: str) -> list[tuple[ClassifierSidecar, str]]:
    """The sidecars of a fusion's sources (old fusion sidecars record them under details.sources),
    each with the path of its classifier as found from the fusion's folder (`located_input`), so
    that the files a source names resolve from the source's own folder."""
    sources = sidecar.details.get("sources")
    if not isinstance(sources, dict):
        return []
    folder = Path(where).parent
    out = []
    for name, source in sources.items():
        if isinstance(source, dict) and isinstance(source.get("sidecar"), dict):
            path = located_input(sidecar.details, f"sources.{name}.path", folder) if name in ("feat1", "feat2") \
                else None
            out.append((parse_sidecar(source["sidecar"], f"{where} (source {name})"), path or where))
    return out


def _clip_of(sidecar: ClassifierSidecar | None, where: str) -> ClipIdentity | None:
    if sidecar is None:
        return None
    if sidecar.clip_model is not None:
        return _clip_from_sidecar(sidecar, where)
    found = [c for s, source_path in source_sidecars(sidecar, where) if (c := _clip_of(s, source_path)) is not None]
    if found and any(not f.same_as(found[0]) for f in found):
        raise InputError(f"{where}: fuses classifiers of different CLIPs ({found[0].describe()} and "
                         f"{next(f for f in found if not f.same_as(found[0])).describe()})")
    return found[0] if found else None


def _category_ids_of(sidecar: ClassifierSidecar | None, where: str) -> list[int] | None:
    if sidecar is None:
        return None
    ids = sidecar.category_ids
    if ids is not None and all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        return list(ids)
    for source, source_path in source_sidecars(sidecar, where):
        ids = _category_ids_of(source, source_path)
        if ids is not None and len(ids) == sidecar.num_classes:
            return ids
    return None


def _unit_rows(array: np.ndarray, path: Path, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The L2-normalised rows that are not all zeros, and the bool `(C,)` mask of those rows."""
    rows = array.astype(np.float32)
    finite = np.isfinite(rows).all(axis=1)
    if not finite.all():
        r = int(np.argmin(finite))
        raise InputError(f"{path}: row {r} ({names[r]}) is not finite (NaN or inf)")
    norms = np.linalg.norm(rows.astype(np.float64), axis=1)
    kept = norms > 0
    if not kept.any():
        raise InputError(f"{path}: every row is all zeros, so it scores nothing")
    return (rows[kept] / norms[kept, None]).astype(np.float32), kept


def _row_synonyms(sidecar: ClassifierSidecar | None, path: Path, names: list[str] | None) -> list[Any] | None:
    """Each row's synonyms: the sidecar's `class_synonyms`, else those of the build's `vocabulary.json`
    beside the classifier when it lists the same classes."""
    if sidecar is None or names is None:
        return None
    own = _strings(sidecar.details.get("class_synonyms"), len(names))
    if own is not None or not (path.parent / "vocabulary.json").is_file():
        return own
    try:
        classes = load_json(path.parent / "vocabulary.json").get("classes")
        if [c.get("name") for c in classes] == names:
            return _strings([c.get("synonyms") for c in classes], len(names))
    except (InputError, AttributeError, TypeError):
        pass
    return None


def _strings(value: Any, count: int) -> list[Any] | None:
    """`value` when it is a list of `count` strings (or lists of strings), else None."""
    if isinstance(value, list) and len(value) == count and \
            all(isinstance(v, str) or (isinstance(v, list) and all(isinstance(s, str) for s in v)) for v in value):
        return value
    return None


def _display_names(paths: Sequence[Path]) -> list[str]:
    stems = [p.name[:-4] if p.name.endswith(".npy") else p.name for p in paths]
    return [str(p) if stems.count(s) > 1 else s for p, s in zip(paths, stems)]


def load_classifiers(paths: Sequence[str | os.PathLike], categories: Sequence[Category], *,
                     clip_model: str | None = None, pretrained: str | None = None,
                     aggregator_space: Sequence[str | os.PathLike] = (), boxed: Collection[int] | None = None,
                     ) -> tuple[list[EvalClassifier], ClipIdentity]:
    """Read every classifier and the CLIP they share.

    A classifier's space is its sidecar's; `aggregator_space` names classifiers without sidecar
    that live in the aggregator's space (the authors' released `*_agg_*.npy`).

    Refused (InputError naming the file): an unreadable or non-2-D array, a sidecar that does not
    describe it, a NaN/inf row, rows that are all zeros, embedding sizes that differ between
    classifiers, CLIPs that differ between sidecars (or from `clip_model`), no CLIP known for a
    classifier without sidecar when `clip_model` is None, rows that match no category
    (`mmovod.evaluation.class_matching`), and, when `boxed` (the ids of the categories that have
    evaluated boxes) is given, a classifier none of whose rows is one of them (it would score no crop).
    Single all-zero rows are left out and logged.
    """
    if not paths:
        raise InputError("no classifiers given (--classifiers A.npy B.npy ...)")
    flag_clip = ClipIdentity(clip_model, pretrained) if clip_model else None
    files = [Path(p) for p in paths]
    if len({p.resolve() for p in files}) != len(files):
        raise InputError("the same classifier file is given twice in --classifiers")
    in_aggregator_space = {Path(p).resolve() for p in aggregator_space}
    unknown = in_aggregator_space - {p.resolve() for p in files}
    if unknown:
        raise InputError(f"{sorted(unknown)[0]}: given to --aggregator-space but not to --classifiers")
    out: list[EvalClassifier] = []
    shared: tuple[Path, ClipIdentity] | None = None
    for path, name in zip(files, _display_names(files)):
        loaded = load_classifier(path)
        where = str(path)
        clip = _clip_of(loaded.sidecar, where)
        if clip is None:
            if flag_clip is None:
                raise InputError(f"{path}: no sidecar names the CLIP that made it; pass --clip_model (and --pretrained)")
            clip = flag_clip
        elif flag_clip is not None and not clip.same_as(flag_clip):
            raise InputError(f"{path}: made with CLIP {clip.describe()}, but --clip_model/--pretrained say "
                             f"{flag_clip.describe()}")
        if shared is not None and not clip.same_as(shared[1]):
            raise InputError(f"{path} was made with CLIP {clip.describe()}, {shared[0]} with {shared[1].describe()}; "
                             "classifiers of different CLIPs cannot share one evaluation (run them separately)")
        shared = shared or (path, clip)
        if out and loaded.array.shape[1] != out[0].rows.shape[1]:
            raise InputError(f"{path}: rows are {loaded.array.shape[1]}-d, but {out[0].path} has "
                             f"{out[0].rows.shape[1]}-d rows")
        count = loaded.array.shape[0]
        side = loaded.sidecar
        row_names = _strings(side.class_names, count) if side is not None else None
        match = match_rows(count, categories, where, ids=_category_ids_of(side, where), names=row_names,
                           synonyms=_row_synonyms(side, path, row_names))
        ids = match.category_ids
        if len(set(ids)) != len(ids):
            raise InputError(f"{path}: the sidecar's category_ids repeat a category")
        by_id = {c.id: c.name for c in categories}
        names = [by_id.get(i, row_names[r] if row_names else f"category {i}") for r, i in enumerate(ids)]
        space = loaded.sidecar.space if loaded.sidecar is not None else "clip"
        if path.resolve() in in_aggregator_space:
            if loaded.sidecar is not None:
                raise InputError(f"{path}: --aggregator-space is for classifiers without sidecar; its sidecar says "
                                 f"space {loaded.sidecar.space!r}")
            space = "aggregator"
        rows, kept = _unit_rows(loaded.array, path, names)
        if boxed is not None and not any(i in boxed for i, k in zip(ids, kept) if k):
            listed = ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")
            which = (f"its one class ({listed}) has no" if len(ids) == 1 else
                     f"none of its {len(ids)} classes ({listed}) has an")
            raise InputError(f"{path}: {which} evaluated box in --ann, so it would score no crop; evaluate it on a "
                             "file annotating its classes")
        left_out = [n for n, k in zip(names, kept) if not k]
        if left_out:
            log.warning("%s: left out %d class%s whose row is all zeros (no exemplars): %s", path, len(left_out),
                        "" if len(left_out) == 1 else "es", ", ".join(left_out[:10]) + (" ..." if len(left_out) > 10 else ""))
        out.append(EvalClassifier(path, name, rows, [i for i, k in zip(ids, kept) if k], loaded.sidecar, clip, space,
                                  match, left_out))
    assert shared is not None
    return out, flag_clip or shared[1]


@dataclass
class AlignedScores:
    """One classifier's scores on the crops whose category it has.

    `scores` `(n, C)` float32 cosine similarities; `labels` `(n,)` row index of the true class;
    `crop_index` `(n,)` the crops' positions in the crop set.
    """

    scores: np.ndarray
    labels: np.ndarray
    crop_index: np.ndarray


def score_crops(classifier: EvalClassifier, embeddings: np.ndarray, crop_category_ids: np.ndarray) -> AlignedScores:
    """Cosine scores of the unit crop `embeddings` `(N, D)` against the classifier's unit rows,
    for the crops whose category the classifier has (the others are left out)."""
    row_of = {cid: r for r, cid in enumerate(classifier.category_ids)}
    label = np.array([row_of.get(int(c), -1) for c in crop_category_ids], dtype=np.int64)
    keep = np.flatnonzero(label >= 0)
    crops = embeddings if len(keep) == len(label) else embeddings[keep]
    return AlignedScores(crops @ classifier.rows.T, label[keep], keep)


SCORINGS = {
    "raw": "crop embeddings compared with the rows as they are: what a detector trained on text rows sees "
           "with these rows swapped in at test time",
    "mapped": "crop embeddings through a linear map fitted on the other classes' crops only: what a detector "
              "trained with these rows (which learns such a layer) sees",
}
"""How a classifier is scored; rows in CLIP's space only `raw`."""


def scored_ways(classifier: EvalClassifier, embeddings: np.ndarray,
                crop_category_ids: np.ndarray) -> Iterator[tuple[str, AlignedScores]]:
    """The classifier's scores on the unit crop `embeddings`: `raw`, and for rows not in CLIP's space also
    `mapped` (`SCORINGS`; skipped with a warning when fewer than two classes have crops)."""
    raw = score_crops(classifier, embeddings, crop_category_ids)
    mapped = None
    if classifier.space != "clip":
        mapped = cross_fitted(embeddings[raw.crop_index], raw.labels, classifier.rows)
        if mapped is None:
            log.warning("%s: fewer than two classes have crops, so no map can be fitted on other classes "
                        "(scored raw only)", classifier.path)
    yield "raw", raw
    if mapped is not None:
        yield "mapped", AlignedScores((mapped @ classifier.rows.T).astype(np.float32), raw.labels, raw.crop_index)


def coverage(classifier: EvalClassifier, categories: Sequence[Category],
             crop_category_ids: np.ndarray) -> dict[str, Any]:
    """Which classes the classifier and the evaluated crops do not share, by category id and name."""
    names = {c.id: c.name for c in categories}
    evaluated = set(np.unique(crop_category_ids).tolist())
    mine = set(classifier.category_ids)
    no_crops = [i for i in classifier.category_ids if i not in evaluated]
    no_row = sorted(evaluated - mine)
    match = classifier.match
    return {
        "matched_by": match.by if match is not None else "category_id",
        "matching": match.describe(len(classifier.category_ids) + len(classifier.left_out)) if match is not None else None,
        "rows_matching_no_category": match.unmatched_rows if match is not None else [],
        "matched_by_synonym": [list(pair) for pair in match.renamed] if match is not None else [],
        "left_out_zero_rows": classifier.left_out,
        "classifier_classes_without_crops": [{"id": i, "name": names.get(i)} for i in no_crops],
        "classifier_classes_not_in_ann": [i for i in classifier.category_ids if i not in names],
        "ann_classes_without_row": [{"id": i, "name": names.get(i)} for i in no_row],
        "crops_without_row": int(np.isin(crop_category_ids, no_row).sum()),
    }
