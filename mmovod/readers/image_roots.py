"""Where exemplar images live: the `--*-img-dir` flags and a record's image path.

An exemplar record names its source with `dataset` and its image with `file_name`, relative to
that source's root (the layout `collate_exemplar_dict` and `sample_exemplars` write):
  lvis           root --lvis-img-dir           (default datasets/coco/),          e.g. train2017/000000000001.jpg
  imagenet21k    root --imagenet-img-dir       (default datasets/imagenet),       e.g. imagenet21k_P/train/<wnid>/<wnid>_1.JPEG
  visual_genome  root --visual-genome-img-dir  (default datasets/VisualGenome/),  e.g. VG_100K/1.jpg
  file           no root: `file_name` is the image's own path (your own photos, see mmovod.vocabulary)
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Mapping

from mmovod.io.errors import InputError

# dataset name -> (argparse dest, default root); defaults are the original scripts' values
IMAGE_ROOTS: dict[str, tuple[str, str]] = {
    "lvis": ("lvis_img_dir", "datasets/coco/"),
    "imagenet21k": ("imagenet_img_dir", "datasets/imagenet"),
    "visual_genome": ("visual_genome_img_dir", "datasets/VisualGenome/"),
}
FILE_DATASET = "file"


def add_image_root_args(parser: argparse.ArgumentParser) -> None:
    """Add --lvis-img-dir, --imagenet-img-dir and --visual-genome-img-dir (one shared group)."""
    group = parser.add_argument_group("image roots (a record's image is <root of its dataset>/<file_name>)")
    group.add_argument("--lvis-img-dir", dest="lvis_img_dir", default=IMAGE_ROOTS["lvis"][1],
                       help="root of COCO images for records with dataset 'lvis' (holds train2017/, val2017/)")
    group.add_argument("--imagenet-img-dir", dest="imagenet_img_dir", default=IMAGE_ROOTS["imagenet21k"][1],
                       help="root of ImageNet-21K for records with dataset 'imagenet21k' (holds imagenet21k_P/)")
    group.add_argument("--visual-genome-img-dir", dest="visual_genome_img_dir", default=IMAGE_ROOTS["visual_genome"][1],
                       help="root of Visual Genome for records with dataset 'visual_genome' (holds VG_100K/, VG_100K_2/)")


def image_roots_from_args(args: argparse.Namespace) -> dict[str, Path]:
    """The dataset -> root folder mapping given by the image-root flags."""
    return {name: Path(getattr(args, dest)) for name, (dest, _) in IMAGE_ROOTS.items()}


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
