"""Exemplar photos for a vocabulary: class folders, the boxes of a COCO file, or the vocabulary's own list.

Sources, per class in this order:
1. the `exemplars` listed in a JSON / YAML vocabulary (paths relative to its folder);
2. `DIR/<class>/<image>` (`--exemplars DIR`): every image (`IMAGE_SUFFIXES`, any case) of a folder
   whose name matches the class, used whole. A folder matches the class whose name, else whose
   only-one-class synonym, equals it after `normalise_name` (case, `_` and spaces), else after
   `loose_key` (also ignoring spaces and `-`: `Hard-Hat` and `hardhat` are `hard hat`); a folder
   matching no class is reported with the closest class names;
3. or, with a COCO-format file (`--exemplar-ann`), its boxes instead of the folders: each
   non-crowd annotation of a category matching a class (by name, as folders do) is an exemplar of
   the image `DIR/<file_name>` cut to its `bbox`.
Folders and categories matching no class, and classes left without any exemplar, are reported.

Before any model runs, every photo is decoded once (`mmovod.readers.photo_check`, in parallel, a
JPEG at 1/8 scale): a missing or unreadable image is a BadImageError naming it (`skip_bad`: skipped
and listed), photos with transparent parts are counted (the encoder flattens them on white), a box that does not lie inside its
image (1 pixel of slack) is an error naming the box's source. Then `-K` keeps at most K exemplars
per class with the authors' LVIS draw (`mmovod.prep.exemplar_sampling`: a fresh generator seeded
with `seed` per class, probabilities proportional to box area, whole images counting as 100 x 100).

Exemplar records are `file` records (`mmovod.readers.image_roots`): `{"dataset": "file",
"file_name": <image path>, "bbox": [x, y, w, h] (boxes only), "source": <where it came from>,
"category_id": <the class's id, when the vocabulary has ids>, "area": <sampling weight>}`, which
`mmovod.clip.crops` crops like LVIS records.
"""
from __future__ import annotations

import difflib
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from mmovod.io.errors import InputError
from mmovod.io.json_files import load_json
from mmovod.io.wording import plural
from mmovod.readers.exemplar_records import BadImageError
from mmovod.prep.exemplar_sampling import WeightRef, exemplar_weight, weighted_choice
from mmovod.readers.photo_check import PLUGIN_FORMATS, check_photos
from mmovod.readers.image_roots import FILE_DATASET
from mmovod.readers.vocabulary_file import Vocabulary, normalise_name

log = logging.getLogger(__name__)

IGNORED_NAMED = 5

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", *PLUGIN_FORMATS)
BOX_SLACK = 1.0
"""Pixels a box may extend past its image (COCO boxes are rounded) before it counts as outside."""

Records = list[list[dict[str, Any]]]


@dataclass
class ExemplarSet:
    """Exemplar records per vocabulary class, with what was not used.

    `records`: per class, the kept records (after `skip_bad` and -K); `candidates`: per class, how
    many usable records there were before -K; `unmatched`: folder or category names matching no
    class; `skipped`: unreadable images dropped under `skip_bad` (`class`, `path`, `reason`);
    `ignored_files`: how many files in the exemplar folder are not images in a class folder;
    `ignored`: the first `IGNORED_NAMED` of them, as paths.
    """

    records: Records
    candidates: list[int]
    unmatched: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    ignored_files: int = 0
    ignored: list[str] = field(default_factory=list)

    def classes_without(self) -> list[int]:
        """Indices of the classes that have no exemplar."""
        return [i for i, records in enumerate(self.records) if not records]


def loose_key(name: str) -> str:
    """The form folder and category names match class names in: `normalise_name` without spaces, `-` and `_`
    (`Hard-Hat`, `hard_hat` and `hardhat` all match the class `hard hat`)."""
    return "".join(ch for ch in normalise_name(name) if ch not in " -_")


def class_matcher(vocab: Vocabulary) -> Callable[[str], int | None]:
    """label -> class index: the class with that name, else the one class with that synonym, each compared
    first as `normalise_name` spells it, then as `loose_key` (when only one class fits)."""
    tables: list[dict[str, set[int]]] = [{}, {}, {}, {}]  # name, loose name, synonym, loose synonym
    for i, cls in enumerate(vocab.classes):
        for names, table in ((cls.name,), tables[0:2]), (cls.synonyms, tables[2:4]):
            for name in names:
                table[0].setdefault(normalise_name(name), set()).add(i)
                table[1].setdefault(loose_key(name), set()).add(i)

    def match(label: str) -> int | None:
        for table, key in zip(tables, (normalise_name(label), loose_key(label)) * 2):
            hits = table.get(key, set())
            if len(hits) == 1:
                return next(iter(hits))
        return None

    return match


def did_you_mean(label: str, vocab: Vocabulary, n: int = 3) -> list[str]:
    """The class names closest to `label` (by `loose_key`, names and synonyms; `difflib`), best first."""
    keys: dict[str, str] = {}
    for cls in vocab.classes:
        for name in (cls.name, *cls.synonyms):
            keys.setdefault(loose_key(name), cls.name)
    close = difflib.get_close_matches(loose_key(label), list(keys), n=n * 2, cutoff=0.6)
    return list(dict.fromkeys(keys[k] for k in close))[:n]


def file_record(path: str | os.PathLike, source: str, bbox: Any = None) -> dict[str, Any]:
    """A `file` exemplar record (the whole image when `bbox` is None)."""
    record: dict[str, Any] = {"dataset": FILE_DATASET, "file_name": str(path)}
    if bbox is not None:
        record["bbox"] = [float(v) for v in bbox]
    record["source"] = source
    return record


def _is_image(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES


def _existing_dir(path: Path, what: str) -> None:
    if not path.exists():
        raise InputError(f"{path}: {what} not found")
    if not path.is_dir():
        raise InputError(f"{path}: {what} is not a folder")


def folder_exemplars(root: str | os.PathLike, vocab: Vocabulary, records: Records) -> tuple[list[str], list[str]]:
    """Add the images of `root/<class>/` to `records` (whole images, file-name order); returns the
    folders that match no class and the other files, ignored (paths).

    InputError when `root` holds images but no folder matches a class: the photos are not laid
    out as `root/<class name>/<photo>`."""
    root = Path(root)
    _existing_dir(root, "exemplar folder")
    match = class_matcher(vocab)
    unmatched: list[str] = []
    ignored: list[str] = []
    matched = False
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            ignored.append(str(entry))
            continue
        index = match(entry.name)
        if index is None:
            unmatched.append(entry.name)
            continue
        matched = True
        files = [p for p in sorted(entry.iterdir()) if not p.name.startswith(".")]
        records[index].extend(file_record(p, f"folder {entry.name}") for p in files if _is_image(p))
        ignored += [str(p) for p in files if not _is_image(p)]
    loose = [p for p in ignored if Path(p).parent == root and _is_image(Path(p))]
    if loose and not matched:
        raise InputError(f"{root}: --exemplars expects one folder per class, DIR/<class name>/<photo>, but no folder "
                         f"here matches a class and {plural(len(loose), 'photo lies', 'photos lie')} directly in it: "
                         f"{', '.join(Path(p).name for p in loose[:IGNORED_NAMED])}{' ...' if len(loose) > IGNORED_NAMED else ''}"
                         f"; move them into folders named after their classes")
    return unmatched, ignored


def _box(value: Any, where: str) -> list[float]:
    if (not isinstance(value, list) or len(value) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)):
        raise InputError(f"{where}: 'bbox' must be [x, y, w, h] (four numbers), found {value!r}")
    if value[2] <= 0 or value[3] <= 0:
        raise InputError(f"{where}: 'bbox' {value!r} has no area")
    return [float(v) for v in value]


def _is_id(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, str) and bool(value))


def _is_name(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


# the fields of a COCO-format file that are read, with their type: (check, what it must be)
_ID = (_is_id, "an integer (or string) id")
_NAME = (_is_name, "a non-empty string")
COCO_FIELDS: dict[str, dict[str, tuple[Any, str]]] = {
    "images": {"id": _ID, "file_name": _NAME},
    "categories": {"id": _ID, "name": _NAME},
    "annotations": {"image_id": _ID, "category_id": _ID},
}


def _objects(doc: dict[str, Any], key: str, path: Path, required: tuple[str, ...]) -> list[dict[str, Any]]:
    items = doc.get(key)
    if not isinstance(items, list):
        raise InputError(f"{path}: no '{key}' list (expected a COCO-format file)")
    for n, item in enumerate(items):
        if not isinstance(item, dict) or any(k not in item for k in required):
            raise InputError(f"{path}: {key} #{n} must be an object with {', '.join(required)}")
        for field_name, (ok, what) in COCO_FIELDS[key].items():
            if not ok(item[field_name]):
                raise InputError(f"{path}: {key} #{n}: '{field_name}' must be {what}, found {item[field_name]!r:.40}")
    return items


def annotation_exemplars(ann_path: str | os.PathLike, image_root: str | os.PathLike, vocab: Vocabulary,
                         records: Records) -> list[str]:
    """Add the non-crowd boxes of a COCO-format file to `records` (file order); image paths are
    `image_root/<file_name>`. Returns the category names that match no class."""
    path, root = Path(ann_path), Path(image_root)
    _existing_dir(root, "exemplar folder")
    doc = load_json(path, "exemplar annotation file")
    if not isinstance(doc, dict):
        raise InputError(f"{path}: expected a COCO-format JSON object with images, annotations and categories")
    images = {im["id"]: im["file_name"] for im in _objects(doc, "images", path, ("id", "file_name"))}
    match = class_matcher(vocab)
    cat_class, unmatched = {}, []
    for cat in _objects(doc, "categories", path, ("id", "name")):
        cat_class[cat["id"]] = index = match(cat["name"])
        if index is None:
            unmatched.append(cat["name"])
    for ann in _objects(doc, "annotations", path, ("image_id", "category_id", "bbox")):
        where = f"{path}: annotation {ann.get('id', '?')}"
        if ann["category_id"] not in cat_class:
            raise InputError(f"{where}: category_id {ann['category_id']!r} is not in 'categories'")
        if ann["image_id"] not in images:
            raise InputError(f"{where}: image_id {ann['image_id']!r} is not in 'images'")
        index = cat_class[ann["category_id"]]
        if index is None or ann.get("iscrowd"):
            continue
        records[index].append(file_record(root / images[ann["image_id"]], where.removeprefix(f"{path}: "),
                                          _box(ann["bbox"], where)))
    return unmatched


def vocabulary_exemplars(vocab: Vocabulary, records: Records) -> None:
    """Add the exemplars listed in the vocabulary file itself."""
    for index, cls in enumerate(vocab.classes):
        where = cls.where.removeprefix(f"{vocab.path}: ")
        records[index].extend(file_record(ref.image, f"{vocab.path.name} {where}", ref.bbox) for ref in cls.exemplars)


def check_images(vocab: Vocabulary, records: Records, skip_bad: bool, workers: int = 1,
                 progress: bool = True) -> list[dict[str, str]]:
    """Decode every photo once (`mmovod.readers.photo_check`, in `workers` threads); drop (`skip_bad`) or
    raise for unreadable ones; raise for boxes outside; say in one line how many have transparent parts.

    Returns the skipped images. Raises BadImageError naming the first unreadable image (in class
    order) otherwise, and InputError naming the record's source for a box outside its image.
    """
    paths = sorted({r["file_name"] for rs in records for r in rs})
    checks = dict(zip(paths, check_photos(paths, workers, progress)))
    skipped: list[dict[str, str]] = []
    for index, class_records in enumerate(records):
        kept = []
        for record in class_records:
            path, check = record["file_name"], checks[record["file_name"]]
            size = check.size
            if size is None:
                reason = f"{check.problem}, a photo of {vocab.classes[index].name!r}"
                if not skip_bad:
                    raise BadImageError(path, reason)
                skipped.append({"class": vocab.classes[index].name, "path": path, "reason": check.problem or ""})
                continue
            if "bbox" in record:
                x, y, w, h = record["bbox"]
                width, height = size
                if x < -BOX_SLACK or y < -BOX_SLACK or x + w > width + BOX_SLACK or y + h > height + BOX_SLACK:
                    raise InputError(f"{record['source']}: bbox {record['bbox']} lies outside its image {path} "
                                     f"({width} x {height})")
            kept.append(record)
        class_records[:] = kept
    for item in skipped:
        log.warning("skipping %s, a photo of %r: %s", item["path"], item["class"], item["reason"])
    transparent = sum(check.alpha for check in checks.values())
    if transparent:
        log.info("%s transparent parts: flattened on white", plural(transparent, "photo has", "photos have"))
    return skipped


def unmatched_names(labels: Sequence[str], vocab: Vocabulary, shown: int = 10) -> str:
    """Folder or category names matching no class, for a message: each with the classes it is closest to."""
    def one(label: str) -> str:
        close = did_you_mean(label, vocab)
        return f"{label!r} (did you mean {' or '.join(map(repr, close))}?)" if close else repr(label)

    return ", ".join(map(one, labels[:shown])) + (f" and {len(labels) - shown} more" if len(labels) > shown else "")


def sampling_weight(record: dict[str, Any]) -> float:
    """The LVIS recipe's weight: box area, or 100 x 100 for a whole image."""
    if record.get("bbox") is None:
        return float(exemplar_weight(WeightRef(dataset="imagenet21k")))
    return float(exemplar_weight(WeightRef(dataset="lvis", bbox=record["bbox"])))


def cap_exemplars(records: Records, k: int | None, seed: int) -> Records:
    """At most `k` records per class (all when None or when a class has no more), drawn like the LVIS
    recipe; every kept record gains its `area` (the weight)."""
    if k is not None and k < 1:
        raise InputError(f"-K must be positive, got {k}")
    out = []
    for class_records in records:
        weights = [sampling_weight(r) for r in class_records]
        picked = list(range(len(class_records)))
        if k is not None and len(class_records) > k:
            picked = weighted_choice(weights, k, seed)
        out.append([{**class_records[i], "area": weights[i]} for i in picked])
    return out


def collect_exemplars(vocab: Vocabulary, exemplar_dir: str | os.PathLike | None = None,
                      exemplar_ann: str | os.PathLike | None = None, k: int | None = None, seed: int = 42,
                      skip_bad: bool = False, workers: int = 1, progress: bool = True) -> ExemplarSet:
    """All exemplar sources of the module docstring, checked and capped at `k` per class."""
    if exemplar_ann is not None and exemplar_dir is None:
        raise InputError("--exemplar-ann needs --exemplars DIR, the folder its image file_names are relative to")
    records: Records = [[] for _ in vocab.classes]
    vocabulary_exemplars(vocab, records)
    unmatched: list[str] = []
    ignored: list[str] = []
    if exemplar_ann is not None:
        unmatched = annotation_exemplars(exemplar_ann, exemplar_dir, vocab, records)
    elif exemplar_dir is not None:
        unmatched, ignored = folder_exemplars(exemplar_dir, vocab, records)
    skipped = check_images(vocab, records, skip_bad, workers, progress)
    for cls, class_records in zip(vocab.classes, records):
        if cls.category_id is not None:
            for record in class_records:
                record["category_id"] = cls.category_id
    candidates = [len(r) for r in records]
    result = ExemplarSet(cap_exemplars(records, k, seed), candidates, unmatched, skipped, len(ignored),
                         ignored[:IGNORED_NAMED])
    if unmatched:
        log.warning("%s no class: %s", plural(len(unmatched), "exemplar folder or category matches",
                                              "exemplar folders or categories match"),
                    unmatched_names(unmatched, vocab))
    if ignored:
        log.warning("ignored %s in %s (not images in a class folder DIR/<class name>/): %s%s",
                    plural(len(ignored), "file", "files"), exemplar_dir,
                    ", ".join(ignored[:IGNORED_NAMED]), " ..." if len(ignored) > IGNORED_NAMED else "")
    without = result.classes_without()
    if without:
        log.warning("%d of %s no exemplars: %s", len(without), plural(len(vocab), "class has", "classes have"),
                    ", ".join(vocab.classes[i].name for i in without[:10]))
    return result
