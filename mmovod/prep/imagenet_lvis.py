"""IN-L: the ImageNet-21K-P images whose folder is an LVIS category's wnid, as an LVIS-format image list."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from mmovod.io.atomic import check_output_path
from mmovod.io.errors import InputError
from mmovod.readers.image_header import default_workers, header_sizes
from mmovod.readers.imagenet_tree import ImageNetTree
from mmovod.io.json_files import save_json
from mmovod.readers.lvis_json import LvisFile
from mmovod.readers.synset_table import lookup

log = logging.getLogger(__name__)

SKIPPED_SHOWN = 10


@dataclass
class ImageNetLvis:
    document: dict
    skipped: list[str] = field(default_factory=list)  # split-relative paths whose header was unreadable
    categories_with_images: int = 0


def build_imagenet_lvis(
    imagenet_path: str | os.PathLike,
    lvis_meta_path: str | os.PathLike,
    workers: int,
    progress: bool = True,
) -> ImageNetLvis:
    """The IN-L document {"categories", "images", "annotations": []} for the tree at `imagenet_path`.

    Images are ordered by category id, then split (train, val, imagenet21k_small_classes), then file
    name, and numbered 1..N in that order. Unreadable images are left out and listed in `skipped`.
    """
    tree = ImageNetTree(imagenet_path)
    for split in tree.missing():
        log.warning("%s: no %s/ folder; its images are not included", tree.root, split)
    lvis = LvisFile(lvis_meta_path, required=("categories",))
    cats = sorted(lvis.categories(), key=lambda c: c["id"])
    if not cats:
        raise InputError(f"{lvis.path}: 'categories' is empty")
    entries = []  # (category id, split-relative file name)
    for cat in cats:
        synset = cat.get("synset")
        if not isinstance(synset, str):
            raise InputError(f"{lvis.path}: category {cat['id']} has no 'synset'")
        wnid = lookup(synset, lvis.path).wnid
        if wnid is None:
            continue
        for split in tree.present:
            entries.extend((cat["id"], tree.split_relative(split, wnid, name)) for name in tree.list_images(split, wnid))
    paths = [os.path.join(tree.root, rel) for _, rel in entries]
    images, skipped = [], []
    counts = dict.fromkeys((c["id"] for c in cats), 0)
    sizes = header_sizes(paths, workers)
    for (cat_id, rel), size in tqdm(zip(entries, sizes), total=len(entries), desc="image headers",
                                   unit="img", disable=not progress):
        if size is None:
            skipped.append(rel)
            continue
        counts[cat_id] += 1
        images.append({"id": len(images) + 1, "file_name": rel, "pos_category_ids": [cat_id],
                       "width": size[0], "height": size[1]})
    for cat in cats:
        cat["image_count"] = counts[cat["id"]]
    document = {"categories": cats, "images": images, "annotations": []}
    return ImageNetLvis(document, skipped, sum(1 for n in counts.values() if n))


def write_imagenet_lvis(
    imagenet_path: str | os.PathLike,
    lvis_meta_path: str | os.PathLike,
    out_path: str | os.PathLike,
    workers: int | None = None,
    strict: bool = False,
) -> tuple[ImageNetLvis, Path]:
    """Build the IN-L document (`build_imagenet_lvis`) and save it to `out_path`.

    `workers` header-reading processes (None: every core this process may use). Returns the result and
    the output path. Unreadable images are logged as a warning, or with
    `strict` raise InputError before anything is written.
    """
    out = check_output_path(out_path, [lvis_meta_path])
    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
    result = build_imagenet_lvis(imagenet_path, lvis_meta_path, workers)
    skipped = result.skipped
    if skipped:
        shown = ", ".join(skipped[:SKIPPED_SHOWN]) + (" ..." if len(skipped) > SKIPPED_SHOWN else "")
        if strict:
            raise InputError(f"{imagenet_path}: {len(skipped)} unreadable images ({shown}); nothing written")
        log.warning("skipped %d unreadable images: %s", len(skipped), shown)
    save_json(out, result.document)
    return result, out
