"""Labelled images for aggregator training: a class-folder tree or an exemplar dictionary, as classes of items.

Two sources, both returned as `SourceClass` lists in a fixed order (classes sorted by name for a
tree, in file order for a dictionary; items in a fixed order within a class):
  - a folder tree `root/<class>/<image files>` (the ImageNet-21K-P layout: `imagenet21k_P/train/<wnid>/`);
    every item is a whole-image record `{"dataset": "imagenet21k", "file_name": "<class>/<file>"}`
    read relative to the tree root;
  - an exemplar dictionary `{synset: [exemplar records]}` (tools/collate_exemplar_dict.py), whose records
    are cropped exactly as the vision-classifier tools crop them (`mmovod.clip.crops`).
Classes can be kept (`keep`) or dropped (`exclude`) by name, and dictionary classes whose LVIS
category is rare can be dropped (LVIS-base training, so that LVIS-rare stays novel).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from mmovod.readers.exemplar_records import record_box
from mmovod.io.errors import InputError
from mmovod.io.launcher import command
from mmovod.readers.image_roots import IMAGE_ROOTS
from mmovod.readers.lvis_json import check_unique_ids
from mmovod.io.json_files import load_json

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
TREE_DATASET = "imagenet21k"


@dataclass
class SourceClass:
    name: str
    records: list[dict[str, Any]]


def item_id(record: dict[str, Any]) -> str:
    """A one-line identifier of a record: `dataset:file_name`, plus `@x,y,w,h` for a box."""
    box = record_box(record)
    base = f"{record['dataset']}:{record['file_name']}"
    return base if box is None else f"{base}@{','.join(str(v) for v in box)}"


def folder_tree_classes(root: str | os.PathLike) -> list[SourceClass]:
    """Every sub-folder of `root` as a class of its image files (sorted), whole-image records."""
    top = Path(root)
    if not top.is_dir():
        raise InputError(f"{top}: image folder not found")
    classes = []
    for entry in sorted(os.scandir(top), key=lambda e: e.name):
        if not entry.is_dir():
            continue
        files = sorted(e.name for e in os.scandir(entry.path) if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS))
        classes.append(SourceClass(entry.name, [{"dataset": TREE_DATASET, "file_name": f"{entry.name}/{f}"} for f in files]))
    if not classes:
        raise InputError(f"{top}: no class folders (expected {top}/<class>/<images>)")
    return classes


def lvis_rare_synsets(lvis_ann: str | os.PathLike) -> set[str]:
    """The synsets of the LVIS categories with frequency 'r' (categories of an LVIS annotation or category file)."""
    doc = load_json(lvis_ann, "LVIS annotation file")
    cats = doc.get("categories") if isinstance(doc, dict) else doc
    if not isinstance(cats, list) or not all(isinstance(c, dict) and "synset" in c and "frequency" in c for c in cats):
        raise InputError(f"{lvis_ann}: expected LVIS categories with 'synset' and 'frequency'")
    check_unique_ids(cats, lvis_ann)
    return {c["synset"] for c in cats if c["frequency"] == "r"}


def lvis_rare_wnids(lvis_ann: str | os.PathLike) -> set[str]:
    """The ImageNet folder names (WordNet ids) of the LVIS-rare synsets, for dropping them from a folder tree."""
    from mmovod.readers.synset_table import synset_table

    table = synset_table()
    return {table[s].wnid for s in lvis_rare_synsets(lvis_ann) if s in table and table[s].wnid}


def exemplar_dict_classes(path: str | os.PathLike) -> list[SourceClass]:
    """The classes of an exemplar dictionary `{synset: [records]}`, in file order, records checked."""
    doc = load_json(path, "exemplar dictionary")
    if not isinstance(doc, dict):
        raise InputError(f"{path}: expected an exemplar dictionary {{synset: [records]}} ({command('collate_exemplar_dict')}), "
                         f"found a JSON {type(doc).__name__}")
    classes = []
    for synset, records in doc.items():
        if not isinstance(records, list):
            raise InputError(f"{path}: class {synset} is a {type(records).__name__}, expected a list of records")
        for e, record in enumerate(records):
            if (not isinstance(record, dict) or record.get("dataset") not in IMAGE_ROOTS
                    or not isinstance(record.get("file_name"), str) or not record["file_name"]):
                raise InputError(f"{path}: class {synset} exemplar {e}: expected a record with 'dataset' "
                                 f"({', '.join(IMAGE_ROOTS)}) and 'file_name'")
            try:
                record_box(record)
            except InputError as exc:
                raise InputError(f"{path}: class {synset} exemplar {e}: {exc}") from None
        classes.append(SourceClass(synset, records))
    return classes


def select_classes(
    classes: list[SourceClass],
    keep: set[str] | None = None,
    exclude: Iterable[str] = (),
    min_items: int = 1,
    strict: bool = False,
    where: str = "",
) -> list[SourceClass]:
    """Apply the class filters, then drop classes with fewer than `min_items` items (reported;
    InputError with `strict`). Raises InputError when nothing is left."""
    excluded = set(exclude)
    names = {c.name for c in classes}
    if keep is not None:
        unknown = sorted(keep - names)
        if unknown:
            log.warning("%d requested classes are not in %s (first: %s)", len(unknown), where, unknown[0])
    chosen = [c for c in classes if (keep is None or c.name in keep) and c.name not in excluded]
    dropped = len(classes) - len(chosen)
    if dropped:
        log.info("%s: %d classes left out by the class filters, %d kept", where, dropped, len(chosen))
    small = [c for c in chosen if len(c.records) < min_items]
    if small:
        listed = ", ".join(f"{c.name} ({len(c.records)})" for c in small[:5])
        message = f"{len(small)} classes have fewer than {min_items} images: {listed}{' ...' if len(small) > 5 else ''}"
        if strict:
            raise InputError(f"{where}: {message} (--strict)")
        log.warning("%s: skipping %s", where, message)
        chosen = [c for c in chosen if len(c.records) >= min_items]
    if not chosen:
        raise InputError(f"{where}: no class left to cache")
    return chosen
