"""The exemplar list: a JSON list over categories (ascending id) of lists of exemplar records.

Written by `sample_exemplars.py`, read by the vision-classifier tools. Each record names its image
(`dataset`, `file_name`) and box (`bbox` for lvis, `x, y, w, h` for visual_genome, none for
imagenet21k, an optional `bbox` for file records of your own photos); see `mmovod.clip.crops` and `mmovod.readers.image_roots`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from mmovod.readers.exemplar_records import BadImageError, record_box
from mmovod.io.errors import InputError
from mmovod.io.launcher import command
from mmovod.io.wording import plural
from mmovod.readers.image_roots import FILE_DATASET, IMAGE_ROOTS, record_image_path
from mmovod.io.json_files import load_json

ExemplarList = list[list[dict[str, Any]]]


def load_exemplar_list(path: str | os.PathLike, allow_empty: bool = False) -> ExemplarList:
    """Read and check an exemplar list: every class a non-empty list of well-formed records.

    Raises InputError (one line naming the file, class and exemplar) otherwise. Classes may hold
    different numbers of exemplars; with `allow_empty`, none (a build's class without photos).
    """
    doc = load_json(path, "exemplar list")
    if isinstance(doc, dict):
        raise InputError(f"{path}: expected a list (one list of exemplar records per category), found a JSON object "
                         f"(an exemplar dictionary? sample K exemplars per class with {command('sample_exemplars')})")
    if not isinstance(doc, list) or not doc:
        raise InputError(f"{path}: expected a non-empty list of lists of exemplar records")
    classes_of_id: dict[int, int] = {}
    for c, records in enumerate(doc):
        if not isinstance(records, list):
            raise InputError(f"{path}: class {c} is a {type(records).__name__}, expected a list of exemplar records "
                             "(the file must be a list of lists)")
        if not records and not allow_empty:
            raise InputError(f"{path}: class {c} has no exemplars")
        for e, record in enumerate(records):
            check_exemplar_record(record, f"{path}: class {c} exemplar {e}")
        category_id = _class_category_id(records)
        if category_id in classes_of_id:
            raise InputError(f"{path}: classes {classes_of_id[category_id]} and {c} both have category_id {category_id}; "
                             "each class is one category")
        if category_id is not None:
            classes_of_id[category_id] = c
    return doc


def check_exemplar_record(record: Any, where: str) -> None:
    """InputError (`where`: what the record is) unless `record` is an exemplar record: an object with a known
    `dataset`, a `file_name` string, a box its dataset accepts (`record_box`) and, if any, an integer `category_id`."""
    if not isinstance(record, dict):
        raise InputError(f"{where} is a {type(record).__name__}, expected an object")
    if record.get("dataset") not in (*IMAGE_ROOTS, FILE_DATASET):
        raise InputError(f"{where}: unknown dataset {record.get('dataset')!r} "
                         f"(expected one of: {', '.join([*IMAGE_ROOTS, FILE_DATASET])})")
    if not isinstance(record.get("file_name"), str) or not record["file_name"]:
        raise InputError(f"{where}: no 'file_name' string")
    category_id = record.get("category_id")
    if category_id is not None and (isinstance(category_id, bool) or not isinstance(category_id, int)):
        raise InputError(f"{where}: 'category_id' must be an integer, found {category_id!r:.40}")
    try:
        record_box(record)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None


def _class_category_id(records: list[dict[str, Any]]) -> int | None:
    """A class's category_id: its first record's (None when it has none or no records)."""
    return records[0].get("category_id") if records else None


def class_category_ids(exemplars: ExemplarList) -> list[int | None]:
    """The `category_id` of each class (from its first record), None where records carry none."""
    return [_class_category_id(records) for records in exemplars]


def check_images_exist(exemplars: ExemplarList, roots: Mapping[str, Path], skip_bad: bool) -> int:
    """Stat every exemplar image before any model is loaded; return how many are missing.

    Without `skip_bad` a missing image raises BadImageError naming the first one and the count, so a
    wrong image root fails in seconds rather than after hours of encoding.
    """
    missing = [p for records in exemplars for r in records if not (p := record_image_path(r, roots)).is_file()]
    if missing and not skip_bad:
        raise BadImageError(missing[0], f"image not found, the first of {plural(len(missing), 'missing exemplar image', 'missing exemplar images')}; "
                            "check the image roots (the --*-img-dir flags)")
    return len(missing)
