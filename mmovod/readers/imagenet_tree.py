"""The ImageNet-21K-P folder tree of the datasets guide: imagenet21k_P/{train,val,imagenet21k_small_classes}/<wnid>/*.JPEG."""
from __future__ import annotations

import os
from pathlib import Path

from mmovod.io.errors import InputError

TREE_NAME = "imagenet21k_P"
SPLITS = ("train", "val", "imagenet21k_small_classes")
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")


class ImageNetTree:
    """An imagenet21k_P folder. `file_name`s are relative to its parent (the image root the encoding
    tools take as --imagenet-img-dir), e.g. `imagenet21k_P/train/n02682922/n02682922_1.JPEG`."""

    def __init__(self, path: str | os.PathLike):
        given = Path(path)
        if not given.is_dir():
            raise InputError(f"{given}: ImageNet-21K-P folder not found")
        # accept datasets/imagenet as well as datasets/imagenet/imagenet21k_P
        self.root = given / TREE_NAME if (given / TREE_NAME).is_dir() else given
        self.present = tuple(split for split in SPLITS if (self.root / split).is_dir())
        if not self.present:
            raise InputError(f"{given}: no {', '.join(s + '/' for s in SPLITS)} folder "
                             f"(nor {TREE_NAME}/ holding them)")
        # the name as given (a symlinked tree keeps its documented name); "." and the like resolve
        self.prefix = self.root.name or self.root.resolve().name

    def missing(self, splits: tuple[str, ...] = SPLITS) -> list[str]:
        return [split for split in splits if split not in self.present]

    def list_images(self, split: str, wnid: str) -> list[str]:
        """Sorted image file names in <split>/<wnid>/ ([] when that folder does not exist)."""
        folder = self.root / split / wnid
        try:
            with os.scandir(folder) as entries:
                names = [e.name for e in entries
                         if e.name.lower().endswith(IMAGE_SUFFIXES) and not e.name.startswith(".")]
        except (FileNotFoundError, NotADirectoryError):
            return []
        names.sort()
        return names

    def relative(self, split: str, wnid: str, name: str) -> str:
        """The record `file_name` relative to the tree's parent folder."""
        return f"{self.prefix}/{split}/{wnid}/{name}"

    def split_relative(self, split: str, wnid: str, name: str) -> str:
        """The path relative to the tree itself (`<split>/<wnid>/<file>`)."""
        return f"{split}/{wnid}/{name}"
