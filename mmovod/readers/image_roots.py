"""Where exemplar images live: one root folder per source dataset, and a record's image path.

An exemplar record names its source with `dataset` and its image with `file_name`, relative to
that source's root (the layout `collate_exemplar_dict` and `sample_exemplars` write):
  lvis           root --lvis-img-dir           (default datasets/coco/),          e.g. train2017/000000000001.jpg
  imagenet21k    root --imagenet-img-dir       (default datasets/imagenet),       e.g. imagenet21k_P/train/<wnid>/<wnid>_1.JPEG
  visual_genome  root --visual-genome-img-dir  (default datasets/VisualGenome/),  e.g. VG_100K/1.jpg
  file           no root: `file_name` is the image's own path (your own photos, see mmovod.vocabulary)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from mmovod.io.errors import InputError

# dataset name -> default root (the original scripts' values)
IMAGE_ROOTS: dict[str, str] = {
    "lvis": "datasets/coco/",
    "imagenet21k": "datasets/imagenet",
    "visual_genome": "datasets/VisualGenome/",
}
FILE_DATASET = "file"


def default_image_roots() -> dict[str, Path]:
    """The dataset -> root folder mapping of the original scripts (relative to the repository root)."""
    return {name: Path(root) for name, root in IMAGE_ROOTS.items()}


def record_image_path(record: Mapping[str, Any], roots: Mapping[str, Path]) -> Path:
    """root of `record['dataset']` / `record['file_name']` (the file_name itself for `file` records);
    InputError for an unknown dataset or no file_name."""
    dataset = record.get("dataset")
    if dataset not in roots and dataset != FILE_DATASET:
        raise InputError(f"unknown exemplar dataset {dataset!r} (expected one of: {', '.join([*roots, FILE_DATASET])})")
    file_name = record.get("file_name")
    if not isinstance(file_name, str) or not file_name:
        raise InputError(f"{dataset} exemplar record without a 'file_name' string: {dict(record)}")
    return Path(file_name) if dataset == FILE_DATASET else Path(roots[dataset]) / file_name
