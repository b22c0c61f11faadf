"""The whole evaluation step: boxes -> crop embeddings (cached) -> scores per classifier -> metrics -> outputs.

Order of work: every input is checked first (annotation file, images, classifiers, CLIP agreement)
and nothing is written before that; then the crop embeddings are read from the cache or
encoded into it (the only expensive step, done once for any number of classifiers); then each
classifier is scored and the outputs are written, each atomically.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mmovod.clip.specs import ViewSpec
from mmovod.evaluation import eval_report, html_report
from mmovod.evaluation.crop_cache import (cache_dir_for, crop_views, cache_key_document, cache_kept, check_shards,
                                          is_complete, read_view_embeddings, write_key)
from mmovod.evaluation.crops_from_annotations import (DEFAULT_MAX_PER_CLASS, DEFAULT_MIN_AREA, Category, EvalCrops,
                                                      select_boxes)
from mmovod.evaluation.metrics import CropMetrics, crop_metrics
from mmovod.evaluation.scoring import SCORINGS, ClipIdentity, EvalClassifier, coverage, load_classifiers, scored_ways
from mmovod.io.atomic import check_output_dir, make_output_dir, write_files_together
from mmovod.io.errors import InputError, interruption_keeps
from mmovod.io.json_files import dumps_json

log = logging.getLogger(__name__)

RESULTS_FORMAT = "mmovod-classifier-eval"
RESULTS_VERSION = 3
CONFUSED_PAIRS = 20
METRIC_NOTES = {
    "top1": "fraction of crops whose highest-scoring class is the true one (ties to the lower row index)",
    "top5": "fraction of crops whose true class is among the 5 highest-scoring classes",
    "mean_class_accuracy": "top-1 accuracy averaged over the classes that have crops",
    "map": "mean over classes with crops of the exact (non-interpolated, tie-aware) average precision of ranking "
           "all crops by that class's score; the detector-free analogue of box AP (AP_r for the rare group)",
    "scores": "cosine between the L2-normalised crop embedding and the L2-normalised class row, as a detector "
              "compares its region embeddings with the rows (no crop passes through the visual aggregator)",
    "scored": SCORINGS,
}


@dataclass(frozen=True)
class EvalSettings:
    """Everything one evaluation run needs (the tool's flags, typed)."""

    classifiers: Sequence[str]
    ann: str
    img_dir: str
    out_dir: str
    cache_dir: str | None = None
    crops: ViewSpec = field(default_factory=crop_views)
    min_area: float = DEFAULT_MIN_AREA
    max_per_class: int = DEFAULT_MAX_PER_CLASS
    seed: int = 0
    clip_model: str | None = None
    pretrained: str | None = None
    device: str | None = None
    batch_size: int = 256
    workers: int = 2
    aggregator_space: Sequence[str] = ()
    skip_bad: bool = False
    rebuild_cache: bool = False
    report: bool = False
    worst_classes: int = 10
    progress: bool = True


@dataclass
class ClassifierResult:
    classifier: EvalClassifier
    metrics: CropMetrics
    crop_index: np.ndarray
    doc: dict[str, Any]


@dataclass
class EvalRun:
    """What `evaluate_classifiers` did: results per classifier and the files written."""

    results: list[ClassifierResult]
    doc: dict[str, Any]
    written: list[Path]
    encoded: bool
    timings: dict[str, float]


def _check_out_dir(out_dir: str) -> Path:
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: --out-dir is a file, not a folder")
    parent = out.parent if str(out.parent) else Path(".")
    if not out.exists() and not parent.is_dir():
        raise InputError(f"{out}: the folder above --out-dir ({parent}) does not exist (create it first)")
    return check_output_dir(out)


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))[:, None]
    return x / np.maximum(norms, np.finfo(np.float32).tiny)


def crop_cache_location(settings: EvalSettings, crops: EvalCrops, clip: ClipIdentity) -> tuple[Path, dict[str, Any]]:
    """The cache folder of this crop set and CLIP, and the key document it is named after."""
    selection = {"min_area": float(settings.min_area), "max_per_class": settings.max_per_class, "seed": settings.seed}
    key = cache_key_document(clip.clip_model, clip.pretrained, crops, settings.crops, selection)
    cache_root = Path(settings.cache_dir) if settings.cache_dir else Path(settings.out_dir) / "crop_cache"
    return cache_dir_for(cache_root, key), key


def crop_embeddings(settings: EvalSettings, crops: EvalCrops, clip: ClipIdentity, dim: int | None, root: Path,
                    key: dict[str, Any]) -> tuple[np.ndarray, bool]:
    """float32 `(N, V, D)` raw view embeddings of every crop, from the cache folder `root` (named after
    `key`, `crop_cache_location`) or encoded into it.

    Returns (embeddings, whether anything was encoded). `dim` is the row size the CLIP-space
    classifiers need (None when there are none).
    """
    check_shards(root, settings.rebuild_cache)
    encoded = False
    if not is_complete(root, crops):
        from mmovod.evaluation import crop_encoding  # torch and open_clip: only when something is to be encoded

        bundle = crop_encoding.load_image_tower(clip.clip_model, clip.pretrained, settings.device, dim)
        make_output_dir(root.parent, parents=True)  # the out-dir too, for the default cache inside it
        log.info("encoding %d crops x %d views into %s", crops.num_crops, settings.crops.num_views, root)
        crop_encoding.encode_into_cache(bundle, crops, root, settings.crops, batch_size=settings.batch_size,
                                   workers=settings.workers, progress=settings.progress)
        write_key(root, key)
        encoded = True
    views = read_view_embeddings(root, crops)
    if dim is not None and views.shape[2] != dim:
        raise InputError(f"{root}: cached embeddings are {views.shape[2]}-d, the classifiers have {dim}-d rows")
    return views, encoded


def interrupted_run_kept(root: Path, crops: EvalCrops, out: Path, written: Sequence[Path]) -> str | None:
    """What an interrupted evaluation keeps: the finished shards of its crop cache, and the results
    when the HTML report was being written (None: nothing)."""
    results = f"{', '.join(p.name for p in written)} are written to {out}" if written else None
    return "; ".join(part for part in (cache_kept(root, crops), results) if part) or None


def _summaries(metrics: CropMetrics, categories: dict[int, Category], ids: Sequence[int]) -> dict[str, Any]:
    freq = np.array([categories[i].frequency if i in categories else None for i in ids], dtype=object)
    out = {"overall": metrics.summary()}
    if any(f is not None for f in freq):
        out["by_frequency"] = {g: metrics.summary(freq == g) for g in eval_report.GROUPS}
    return out


def result_document(classifier: EvalClassifier, metrics: CropMetrics, categories: dict[int, Category],
                    cover: dict[str, Any], scored: str = "raw") -> dict[str, Any]:
    """Every number of one classifier scored one way (`SCORINGS`), JSON-ready (NaN becomes null); rows
    not in CLIP's space get a second document, named "<name> (mapped)", for the mapped scoring."""
    ids = classifier.category_ids
    name = [categories[i].name if i in categories else f"category {i}" for i in ids]
    per_class = [{
        "id": i, "name": name[r], "frequency": categories[i].frequency if i in categories else None,
        "image_count": categories[i].image_count if i in categories else None,
        "crops": int(metrics.crops_per_class[r]),
        "accuracy": None if np.isnan(metrics.accuracy_per_class[r]) else float(metrics.accuracy_per_class[r]),
        "ap": None if np.isnan(metrics.ap[r]) else float(metrics.ap[r]),
    } for r, i in enumerate(ids)]
    confused = [{"true_id": ids[t], "true": name[t], "predicted_id": ids[p], "predicted": name[p], "count": n,
                 "fraction_of_true": n / int(metrics.crops_per_class[t])}
                for t, p, n in metrics.confused_pairs(CONFUSED_PAIRS)]
    return {
        "name": classifier.name if scored == "raw" else f"{classifier.name} (mapped)", "path": str(classifier.path),
        "kind": classifier.kind, "space": classifier.space, "scored": scored,
        "classes": len(ids), **_summaries(metrics, categories, ids), "confused_pairs": confused,
        "coverage": cover, "per_class": per_class,
    }


def write_report(out: Path, results: list[ClassifierResult], doc: dict[str, Any], crops: EvalCrops,
                 context: float, worst_classes: int, plots: list[str]) -> list[Path]:
    """The HTML page and its thumbnails (see `mmovod.evaluation.html_report`)."""
    thumbs = html_report.Thumbnails(out / eval_report.REPORT_FILES)
    worst = {r.doc["name"]: html_report.worst_classes(r.classifier, r.metrics, r.crop_index, r.doc["per_class"],
                                                           crops, context, worst_classes, thumbs)
             for r in results}
    page = out / eval_report.REPORT_HTML
    eval_report.write_html(page, [r.doc for r in results], doc, worst, plots)
    return [page, *thumbs.written]


def evaluate_classifiers(settings: EvalSettings) -> EvalRun:
    """Run the evaluation described in the module docstring; see `EvalSettings` for the inputs."""
    timings: dict[str, float] = {}
    start = time.perf_counter()
    out = _check_out_dir(settings.out_dir)
    if settings.cache_dir and not Path(settings.cache_dir).exists() and not Path(settings.cache_dir).parent.is_dir():
        raise InputError(f"{settings.cache_dir}: the folder above --cache-dir does not exist (create it first)")
    check_output_dir(settings.cache_dir or out / "crop_cache", parents=True)  # before any encoding
    if settings.worst_classes < 0:
        raise InputError("--worst-classes must not be negative")
    crops = select_boxes(settings.ann, settings.img_dir, min_area=settings.min_area,
                         max_per_class=settings.max_per_class, seed=settings.seed, skip_bad=settings.skip_bad,
                         workers=max(1, settings.workers))
    classifiers, clip = load_classifiers(settings.classifiers, crops.categories, clip_model=settings.clip_model,
                                         pretrained=settings.pretrained, aggregator_space=settings.aggregator_space,
                                         boxed={int(c.name) for c in crops.classes})
    timings["inputs_s"] = time.perf_counter() - start

    cache_root, key = crop_cache_location(settings, crops, clip)
    written: list[Path] = []
    with interruption_keeps(lambda: interrupted_run_kept(cache_root, crops, out, written)):  # Ctrl-C: says what is kept
        start = time.perf_counter()
        views, encoded = crop_embeddings(settings, crops, clip, classifiers[0].rows.shape[1], cache_root, key)
        timings["embeddings_s"] = time.perf_counter() - start

        start = time.perf_counter()
        query = _unit(views.mean(axis=1))
        del views
        categories = {c.id: c for c in crops.categories}
        crop_ids = crops.crop_category_ids()
        results = []
        for classifier in classifiers:
            for scored, aligned in scored_ways(classifier, query, crop_ids):
                metrics = crop_metrics(aligned.scores, aligned.labels)
                crop_index = aligned.crop_index
                del aligned  # the (crops x classes) scores: one such matrix alive at a time
                doc = result_document(classifier, metrics, categories, coverage(classifier, crops.categories, crop_ids),
                                      scored)
                results.append(ClassifierResult(classifier, metrics, crop_index, doc))
        timings["scoring_s"] = time.perf_counter() - start

        doc = {
            "format": RESULTS_FORMAT, "version": RESULTS_VERSION, "annotations": settings.ann, "img_dir": settings.img_dir,
            "clip": clip.describe(), "cache": str(cache_root),
            "crops": {**crops.counts, "classes": len(crops.classes), "missing_images": crops.missing_images},
            "settings": {"context": settings.crops.context, "num_views": settings.crops.num_views, "tta": settings.crops.tta,
                         "min_area": settings.min_area, "max_per_class": settings.max_per_class, "seed": settings.seed},
            "metrics": METRIC_NOTES, "classifiers": [r.doc for r in results],
        }
        start = time.perf_counter()
        docs = [r.doc for r in results]
        outputs = {out / eval_report.RESULTS_JSON: dumps_json(doc, indent=True),
                   out / eval_report.RESULTS_MD: eval_report.markdown_document(docs, doc).encode(),
                   out / eval_report.GROUPS_PNG: eval_report.plot_groups(docs), out / eval_report.AP_PNG: eval_report.plot_ap_vs_frequency(docs)}
        created = not out.exists()
        make_output_dir(out)
        try:
            write_files_together(outputs)  # all or none: a failing plot or a full disk leaves no new results
        except InputError:
            if created:
                out.rmdir()
            raise
        written.extend(outputs)
        if settings.report:
            written += write_report(out, results, doc, crops, settings.crops.context, settings.worst_classes,
                                    [eval_report.GROUPS_PNG, eval_report.AP_PNG])
        timings["outputs_s"] = time.perf_counter() - start
        log.info("time: %s", ", ".join(f"{k[:-2]} {v:.1f} s" for k, v in timings.items()))
        return EvalRun(results, doc, written, encoded, timings)

