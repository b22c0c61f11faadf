"""The HTML report's content: each classifier's worst classes (lowest AP) with their misclassified
crops, a few correct ones and, for classifiers built from image exemplars (the sidecar, or a fused
source's sidecar, names an exemplar list), the exemplars the class row was made from. Thumbnails
are written once into `report_files/` and shared by every classifier that shows them."""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from PIL import ImageOps

from mmovod.classifiers.sidecar import ClassifierSidecar, parse_sidecar
from mmovod.classifiers.sidecar_files import from_working_folder, located_input
from mmovod.clip.crops import load_exemplar_crop
from mmovod.evaluation import eval_report
from mmovod.evaluation.crops_from_annotations import EvalCrops
from mmovod.evaluation.metrics import CropMetrics
from mmovod.evaluation.scoring import EvalClassifier
from mmovod.io.atomic import atomic_open, make_output_dir
from mmovod.io.errors import InputError
from mmovod.readers.exemplar_list import load_exemplar_list
from mmovod.readers.image_roots import FILE_DATASET

log = logging.getLogger(__name__)

THUMBNAIL_SIZE = 112
CROPS_SHOWN = 8
CORRECT_SHOWN = 2
EXEMPLARS_SHOWN = 5


class Thumbnails:
    """Square JPEG thumbnails of records' crops in one folder, each written once; links are relative
    to the folder's parent (where the page is)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.written: dict[Path, None] = {}  # ordered set

    def link(self, name: str, record: Mapping[str, Any], roots: Mapping[str, Path], context: float) -> str:
        path = self.folder / f"{name}.jpg"
        if path not in self.written:
            make_output_dir(self.folder)
            image = ImageOps.pad(load_exemplar_crop(record, roots, context), (THUMBNAIL_SIZE, THUMBNAIL_SIZE),
                                 color=(255, 255, 255))
            with atomic_open(path, "wb") as handle:
                image.save(handle, format="JPEG", quality=85)
            self.written[path] = None
        return f"{self.folder.name}/{path.name}"


@dataclass
class ExemplarSource:
    """Where a classifier's exemplars are: records per category id, their image roots and crop context."""

    by_category: dict[int, list[dict[str, Any]]]
    roots: dict[str, Path]
    context: float


def _exemplar_details(sidecar: ClassifierSidecar, where: str, folder: Path) -> tuple[dict[str, Any], Path] | None:
    """The details naming an exemplar list (the sidecar's, else a fused source's) and the folder of the
    sidecar they belong to, from which the paths they hold resolve (`mmovod.classifiers.sidecar_files`)."""
    if isinstance(sidecar.details.get("exemplar_list"), str):
        return sidecar.details, folder
    sources = sidecar.details.get("sources")
    for name, source in (sources.items() if isinstance(sources, dict) else ()):
        if isinstance(source, dict) and isinstance(source.get("sidecar"), dict):
            own = Path(located_input(sidecar.details, f"sources.{name}.path", folder) or where).parent
            if found := _exemplar_details(parse_sidecar(source["sidecar"], f"{where} (source {name})"), where, own):
                return found
    return None


def exemplar_source(classifier: EvalClassifier) -> ExemplarSource | None:
    """The exemplars `classifier` was built from, or None (no exemplar list recorded, or it cannot be
    read any more: the report then shows crops only). The list, its photos and its image roots are
    found from here, else from the sidecar's folder (`mmovod.classifiers.sidecar_files`)."""
    if classifier.sidecar is None:
        return None
    found = _exemplar_details(classifier.sidecar, str(classifier.path), classifier.path.parent)
    if found is None:
        return None
    details, folder = found
    try:
        exemplars = load_exemplar_list(located_input(details, "exemplar_list", folder), allow_empty=True)
    except InputError as exc:
        log.warning("report: no exemplars shown for %s (%s)", classifier.name, exc)
        return None
    roots = details.get("image_roots") if isinstance(details.get("image_roots"), dict) else {}
    context = details.get("context") if isinstance(details.get("context"), (int, float)) else 0.0
    # the list has one class per row, in row order: row r's exemplars are class r's, under the category row r
    # matched in --ann (its records' own category_id only when the list and the rows differ in length)
    row_ids = classifier.match.category_ids if classifier.match is not None else []
    by_row = len(row_ids) == len(exemplars)
    by_category = {row_ids[c] if by_row else records[0].get("category_id"): [_found(r, details, folder) for r in records]
                   for c, records in enumerate(exemplars) if records}
    return ExemplarSource({k: v for k, v in by_category.items() if isinstance(k, int)},
                          {name: from_working_folder(p, details, folder) for name, p in roots.items()}, float(context))


def _found(record: dict[str, Any], details: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    """A photo record (`file` dataset) with its path as found from here (`from_working_folder`)."""
    if record.get("dataset") != FILE_DATASET or not isinstance(record.get("file_name"), str):
        return record
    return {**record, "file_name": str(from_working_folder(record["file_name"], details, folder))}


def _record_key(record: Mapping[str, Any]) -> str:
    text = f"{record.get('dataset')}|{record.get('file_name')}|{record.get('bbox')}|" \
           f"{[record.get(k) for k in ('x', 'y', 'w', 'h')]}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def worst_classes(classifier: EvalClassifier, metrics: CropMetrics, crop_index: np.ndarray, per_class: Sequence[dict],
                  crops: EvalCrops, context: float, count: int, thumbs: Thumbnails) -> list[eval_report.WorstClass]:
    """The `count` classes with the lowest AP, each with its tiles: exemplars, misclassified crops, correct crops."""
    records = crops.records()
    names = [c["name"] for c in per_class]
    source = exemplar_source(classifier)
    ranked = [r for r in np.argsort(np.where(np.isnan(metrics.ap), np.inf, metrics.ap), kind="stable")
              if not np.isnan(metrics.ap[r])]
    out = []
    for r in ranked[:count]:
        tiles = []
        if source is not None:
            for record in source.by_category.get(classifier.category_ids[r], [])[:EXEMPLARS_SHOWN]:
                try:
                    link = thumbs.link(f"exemplar_{_record_key(record)}", record, source.roots, source.context)
                except InputError as exc:  # an exemplar image moved since: say so, keep the report
                    log.warning("report: exemplar not shown (%s)", exc)
                    continue
                tiles.append(eval_report.Tile(link, "exemplar", "exemplar"))
        members = np.flatnonzero(metrics.labels == r)
        wrong = [i for i in members if metrics.predicted[i] != r][:CROPS_SHOWN]
        right = [i for i in members if metrics.predicted[i] == r][:CORRECT_SHOWN]
        for i in [*wrong, *right]:
            crop = int(crop_index[i])
            link = thumbs.link(f"crop_{crop:06d}", records[crop], crops.roots, context)
            ok = metrics.predicted[i] == r
            tiles.append(eval_report.Tile(link, "correct" if ok else f"\u2192 {names[metrics.predicted[i]]}",
                                     "correct" if ok else "wrong"))
        out.append(eval_report.WorstClass(per_class[r], tiles))
    return out
