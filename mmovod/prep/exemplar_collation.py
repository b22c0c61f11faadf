"""Collate image exemplars per LVIS class from LVIS train, ImageNet-21K-P and Visual Genome (the paper's recipe).

Per class, in order: LVIS train annotations with area > 32*32 (strict, as lvis-api's
`get_ann_ids(area_rng=[32**2, inf])` that the original uses); the ImageNet images of the class's
wnid (train/ and imagenet21k_small_classes/); for classes with fewer than 40 so far, Visual Genome
objects whose only synset is the class's, with w*h >= 32*32; for classes still under 10, the
ImageNet images and Visual Genome objects of the class's cousin synsets.

Records are written as JSON built from the inputs' own bytes: an LVIS annotation or VG object is
never decoded beyond the few fields the recipe reads, so polygons pass through untouched.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import msgspec
import orjson
from tqdm import tqdm

from mmovod.io.atomic import atomic_open, check_output_path
from mmovod.io.errors import InputError
from mmovod.readers.exemplar_records import check_box
from mmovod.readers.imagenet_tree import ImageNetTree
from mmovod.readers.lvis_json import LvisFile, check_category_ids, exemplar_refs, image_urls
from mmovod.readers.synset_table import cousin_table, lookup
from mmovod.readers.visual_genome import VisualGenome
from mmovod.io.wording import plural

log = logging.getLogger(__name__)

MIN_LVIS_AREA = 32 * 32  # LVIS keeps area > this (lvis-api's area range is open below); Visual Genome w*h >= it
VG_BELOW = 40  # classes with fewer exemplars than this (from LVIS + ImageNet) take Visual Genome objects
COUSINS_BELOW = 10  # classes with fewer than this (after Visual Genome) take their cousins' exemplars
EXEMPLAR_SPLITS = ("train", "imagenet21k_small_classes")
PAPER_IMAGENET_DIRECT = 997
PAPER_COUSIN_CLASSES = 43


def _j(value) -> bytes:
    return orjson.dumps(value)


@dataclass
class ClassExemplars:
    cat_id: int
    synset: str
    lvis: list[int] = field(default_factory=list)  # annotation indices into the LVIS file
    imagenet: list[bytes] = field(default_factory=list)  # whole records
    vg: list[tuple[str, int, msgspec.Raw]] = field(default_factory=list)  # (synset, image_id, raw object)
    cousin_imagenet: list[bytes] = field(default_factory=list)
    cousin_vg: list[tuple[str, int, msgspec.Raw]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.lvis) + len(self.imagenet) + len(self.vg) + len(self.cousin_imagenet) + len(self.cousin_vg)


@dataclass
class Collation:
    classes: list[ClassExemplars]
    lvis: LvisFile
    lvis_raws: list[msgspec.Raw]
    lvis_refs: list
    lvis_file_names: dict[int, bytes]
    vg_file_names: dict[int, str]
    report: dict = field(default_factory=dict)


def _imagenet_records(tree: ImageNetTree, wnid: str, cat_id: int, synset: str) -> list[bytes]:
    return [_j({"file_name": tree.relative(split, wnid, name), "category_id": cat_id,
                "dataset": "imagenet21k", "synset": synset})
            for split in EXEMPLAR_SPLITS if split in tree.present
            for name in tree.list_images(split, wnid)]


def _open_imagenet(imagenet_dir: str | os.PathLike) -> ImageNetTree | None:
    if not Path(imagenet_dir).exists():
        log.warning("%s: not found; no ImageNet-21K exemplars", imagenet_dir)
        return None
    tree = ImageNetTree(imagenet_dir)
    for split in tree.missing(EXEMPLAR_SPLITS):
        log.warning("%s: no %s/ folder; its images are not used", tree.root, split)
    return tree


def _open_visual_genome(vg_dir: str | os.PathLike) -> VisualGenome | None:
    if not Path(vg_dir).exists():
        log.warning("%s: not found; no Visual Genome exemplars", vg_dir)
        return None
    return VisualGenome(vg_dir)


def collate_exemplars(
    lvis_dir: str | os.PathLike,
    imagenet_dir: str | os.PathLike,
    visual_genome_dir: str | os.PathLike,
    progress: bool = True,
) -> Collation:
    """Gather every class's exemplars (see the module docstring); `report` summarises the sources.

    A missing ImageNet or Visual Genome folder is a warning (that source contributes nothing);
    a missing LVIS train file, or a source folder without its files, is an InputError.
    """
    lvis = LvisFile(Path(lvis_dir) / "lvis_v1_train.json", required=("categories", "annotations", "images"))
    cats = sorted(lvis.categories(), key=lambda c: c["id"])
    classes, entries, by_synset = [], [], {}
    for cat in cats:
        if not isinstance(cat.get("synset"), str):
            raise InputError(f"{lvis.path}: category {cat['id']} has no 'synset'")
        if cat["synset"] in by_synset:  # the exemplar dictionary is keyed by synset
            raise InputError(f"{lvis.path}: categories {by_synset[cat['synset']]} and {cat['id']} share synset {cat['synset']}")
        by_synset[cat["synset"]] = cat["id"]
        entries.append(lookup(cat["synset"], lvis.path))
        classes.append(ClassExemplars(cat["id"], cat["synset"]))
    by_id = {c.cat_id: c for c in classes}
    imagenet = _open_imagenet(imagenet_dir)
    visual_genome = _open_visual_genome(visual_genome_dir)

    # LVIS train: annotation indices per class, in file order
    refs = exemplar_refs(lvis)
    check_category_ids(refs, set(by_id), lvis.path)
    file_names = {img.id: _j("/".join(img.coco_url.rsplit("/", 2)[-2:])) for img in image_urls(lvis)}
    for index, ref in enumerate(tqdm(refs, desc="LVIS annotations", unit="ann", disable=not progress)):
        if ref.area > MIN_LVIS_AREA:
            if ref.image_id not in file_names:
                raise InputError(f"{lvis.path}: annotation #{index} has image_id {ref.image_id}, which is not an image")
            box = ref.bbox  # floats or None (decoded typed); the full check only for a box that fails the quick one
            if box is None or len(box) != 4 or not (box[2] >= 0 and box[3] >= 0 and math.isfinite(sum(box))):
                check_box({"dataset": "lvis", "bbox": box}, f"{lvis.path}: annotation #{index}")
            by_id[ref.category_id].lvis.append(index)
    raws = lvis.annotations_raw()

    # ImageNet-21K-P: the folders named by each class's wnid
    direct = 0
    if imagenet is not None:
        for cls, entry in zip(tqdm(classes, desc="ImageNet folders", unit="class", disable=not progress), entries):
            if entry.wnid is not None:
                cls.imagenet = _imagenet_records(imagenet, entry.wnid, cls.cat_id, cls.synset)
                direct += bool(cls.imagenet)

    # Visual Genome: only classes under 40 so far, and (later) the cousins of classes under 10
    cousins = cousin_table()
    lacking = [(cls, entry) for cls, entry in zip(classes, entries) if len(cls) < VG_BELOW]
    vg_objects, vg_file_names = {}, {}
    if visual_genome is not None and lacking:
        wanted = {entry.wordnet for _, entry in lacking}
        wanted.update(s for cls, _ in lacking for s in cousins.get(cls.synset, ()))
        vg_file_names = visual_genome.image_file_names()
        vg_objects = visual_genome.objects_by_synset(wanted, progress)
        for cls, entry in lacking:
            cls.vg = [(cls.synset, iid, raw) for iid, raw in vg_objects.get(entry.wordnet, ())]
    under_cousin = [cls for cls in classes if len(cls) < COUSINS_BELOW]
    for cls in under_cousin:
        for cousin in cousins.get(cls.synset, ()):
            wnid = lookup(cousin, "cousin table").wnid
            if imagenet is not None and wnid is not None:
                cls.cousin_imagenet.extend(_imagenet_records(imagenet, wnid, cls.cat_id, cousin))
        for cousin in cousins.get(cls.synset, ()):
            cls.cousin_vg.extend((cousin, iid, raw) for iid, raw in vg_objects.get(cousin, ()))
    for cls in classes:
        for _, iid, _ in cls.vg + cls.cousin_vg:
            if iid not in vg_file_names:
                raise InputError(f"{visual_genome.images_path}: no entry for image_id {iid} of objects.json")

    report = {
        "classes": len(classes),
        "with_lvis": sum(1 for c in classes if c.lvis),
        "with_imagenet": sum(1 for c in classes if c.imagenet),
        "imagenet_direct": direct,
        "vg_candidates": len(lacking),
        "with_visual_genome": sum(1 for c in classes if c.vg),
        "needing_cousins": len(under_cousin),
        "with_cousins": sum(1 for c in classes if c.cousin_imagenet or c.cousin_vg),
        "under_10": [c.synset for c in classes if len(c) < COUSINS_BELOW],
        "exemplars": sum(len(c) for c in classes),
    }
    return Collation(classes, lvis, raws, refs, file_names, vg_file_names, report)


def _record_pieces(col: Collation, cls: ClassExemplars) -> Iterator[tuple[bytes | memoryview, ...]]:
    """Each record's JSON as byte pieces: LVIS, ImageNet, Visual Genome, cousin ImageNet, cousin Visual Genome."""
    lvis_tail = b',"dataset":"lvis","file_name":'
    synset = _j(cls.synset)
    for index in cls.lvis:
        # the annotation's own text without its closing brace, then the added fields
        yield (memoryview(col.lvis_raws[index])[:-1],
               lvis_tail + col.lvis_file_names[col.lvis_refs[index].image_id] + b',"synset":' + synset + b"}")
    for group in (cls.imagenet, cls.vg, cls.cousin_imagenet, cls.cousin_vg):
        for item in group:
            if isinstance(item, bytes):
                yield (item,)
            else:  # Visual Genome: the added fields, then the object's own fields
                vg_synset, iid, raw = item
                head = _j({"image_id": iid, "dataset": "visual_genome", "file_name": col.vg_file_names[iid],
                           "category_id": cls.cat_id, "synset": vg_synset})
                yield (head[:-1] + b",", memoryview(raw)[1:])


def write_exemplar_dict(col: Collation, out_path: str | os.PathLike, progress: bool = True) -> None:
    """Write {synset: [records]} (classes by ascending category id) atomically."""
    with atomic_open(out_path, "wb") as out:
        out.write(b"{")
        for n, cls in enumerate(tqdm(col.classes, desc="writing", unit="class", disable=not progress)):
            out.write((b"," if n else b"") + _j(cls.synset) + b":[")
            for k, pieces in enumerate(_record_pieces(col, cls)):
                if k:
                    out.write(b",")
                for piece in pieces:
                    out.write(piece)
            out.write(b"]")
        out.write(b"}")


def build_exemplar_dict(
    lvis_dir: str | os.PathLike,
    imagenet_dir: str | os.PathLike,
    vg_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    strict: bool = False,
) -> tuple[dict, Path]:
    """Collate every class's exemplars and write the exemplar dictionary; returns (report, output path).

    With `strict`, InputError (nothing written) when a class ends with fewer than COUSINS_BELOW exemplars;
    otherwise those classes are listed in the report's "under_10".
    """
    out = check_output_path(out_path)
    col = collate_exemplars(lvis_dir, imagenet_dir, vg_dir)
    under = col.report["under_10"]
    if under and strict:
        raise InputError(f"{out_path}: {plural(len(under), 'class has', 'classes have')} fewer than {COUSINS_BELOW} exemplars "
                         f"({', '.join(under[:10])}{' ...' if len(under) > 10 else ''}); nothing written")
    write_exemplar_dict(col, out)
    return col.report, out
