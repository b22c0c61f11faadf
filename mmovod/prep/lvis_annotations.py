"""The two LVIS annotation steps of the guide: drop rare-class annotations, and count per-category statistics."""
from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from mmovod.io.atomic import check_output_path, write_bytes_atomic
from mmovod.io.errors import InputError
from mmovod.io.json_files import dumps_json
from mmovod.readers.lvis_json import (
    CategoriesAndAnnotations,
    CategoriesAndImages,
    LvisFile,
    check_category_ids,
    decode_fields,
    parse_categories,
)

log = logging.getLogger(__name__)

FREQUENCIES = ("r", "c", "f")


def default_norare_path(ann_path: str | os.PathLike) -> Path:
    p = Path(ann_path)
    return p.with_name(p.name[:-5] + "_norare.json" if p.name.endswith(".json") else p.name + "_norare.json")


def default_cat_info_path(ann_path: str | os.PathLike) -> Path:
    p = Path(ann_path)
    return p.with_name(p.name[:-5] + "_cat_info.json" if p.name.endswith(".json") else p.name + "_cat_info.json")


@dataclass
class RareRemoval:
    annotations_before: int
    annotations_after: int
    rare_categories: int
    path: str | os.PathLike


def remove_rare_annotations(ann_path: str | os.PathLike, out_path: str | os.PathLike | None = None) -> RareRemoval:
    """Write `ann_path` to `out_path` (default: `default_norare_path`) without the annotations of
    categories whose frequency is 'r'.

    Images, categories and every other top-level key pass through byte for byte; kept annotations
    keep their order and their exact JSON text.
    """
    out_path = out_path or default_norare_path(ann_path)
    out = check_output_path(out_path, [ann_path])
    lvis = LvisFile(ann_path)
    cats = lvis.categories()
    rare_ids = set()
    for cat in cats:
        freq = cat.get("frequency")
        if freq is None:
            raise InputError(f"{lvis.path}: category {cat['id']} has no 'frequency'")
        if freq not in FREQUENCIES:
            raise InputError(f"{lvis.path}: category {cat['id']} has frequency {freq!r} (expected r, c or f)")
        if freq == "r":
            rare_ids.add(cat["id"])
    refs = lvis.annotation_refs()
    check_category_ids(refs, {c["id"] for c in cats}, lvis.path)
    raws = lvis.annotations_raw()
    kept = [raw for raw, ref in zip(raws, refs) if ref.category_id not in rare_ids]
    lvis.write_with(out, {"annotations": kept})
    return RareRemoval(len(refs), len(kept), len(rare_ids), out_path)


@dataclass
class CategoryInfo:
    categories: list[dict]
    frequency_totals: dict[str, int] = field(default_factory=dict)


def frequency_for(image_count: int, r_thresh: int, c_thresh: int) -> str:
    """LVIS frequency bucket: 'r' below r_thresh images, 'c' below c_thresh, else 'f'."""
    if image_count < r_thresh:
        return "r"
    if image_count < c_thresh:
        return "c"
    return "f"


def count_category_info(
    ann_path: str | os.PathLike,
    add_freq: bool = False,
    r_thresh: int = 10,
    c_thresh: int = 100,
    bypass: bool = False,
) -> CategoryInfo:
    """Per-category image_count and instance_count (and optionally a recomputed frequency).

    Normal mode counts annotations: instance_count = annotations of the category, image_count =
    distinct images holding one. With `bypass` both count images whose `pos_category_ids` list it.
    """
    path = str(ann_path)
    doc = decode_fields(path, CategoriesAndImages if bypass else CategoriesAndAnnotations)
    cats = parse_categories(doc.categories, path)
    known = {c["id"] for c in cats}
    instances: Counter[int] = Counter()
    images: dict[int, set[int]] = {cid: set() for cid in known}
    if bypass:
        for img in doc.images:
            for cid in img.pos_category_ids:
                if cid not in known:
                    raise InputError(f"{path}: image {img.id} lists category {cid}, which is not a category")
                images[cid].add(img.id)
        instances.update({cid: len(ids) for cid, ids in images.items()})
    else:
        check_category_ids(doc.annotations, known, path)
        for ref in doc.annotations:
            instances[ref.category_id] += 1
            images[ref.category_id].add(ref.image_id)
    totals = {f: 0 for f in FREQUENCIES} if add_freq else {}
    for cat in cats:
        cat["image_count"] = len(images[cat["id"]])
        cat["instance_count"] = instances[cat["id"]]
        if add_freq:
            cat["frequency"] = frequency_for(cat["image_count"], r_thresh, c_thresh)
            totals[cat["frequency"]] += 1
    return CategoryInfo(cats, totals)


def write_category_info(
    ann_path: str | os.PathLike,
    out_path: str | os.PathLike | None = None,
    add_freq: bool = False,
    r_thresh: int = 10,
    c_thresh: int = 100,
    bypass: bool = False,
) -> tuple[CategoryInfo, str | os.PathLike]:
    """`count_category_info` written as the category list to `out_path` (default: `default_cat_info_path`);
    returns the counts and the path written."""
    out = out_path or default_cat_info_path(ann_path)
    check_output_path(out, [ann_path])
    info = count_category_info(ann_path, add_freq, r_thresh, c_thresh, bypass)
    write_bytes_atomic(out, dumps_json(info.categories))
    return info, out
