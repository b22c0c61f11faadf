"""Partial reading of Visual Genome's objects.json (~400 MB, 3.8M objects) and image_data.json.

Each image entry is kept as raw JSON bytes; only its image_id and each object's w, h and synsets are
decoded, and an object's full JSON text is sliced out only when it is kept. Nothing per object
outlives its image unless it is kept.
"""
from __future__ import annotations

import logging
import os
from collections import defaultdict
from pathlib import Path
from typing import Iterable

import msgspec
from tqdm import tqdm

from mmovod.io.errors import InputError
from mmovod.io.json_files import check_utf8, read_bytes
from mmovod.readers.exemplar_records import check_box
from mmovod.readers.lvis_json import decode_checked

log = logging.getLogger(__name__)

MIN_OBJECT_AREA = 32 * 32


class ObjectRef(msgspec.Struct):
    w: int | float
    h: int | float
    synsets: list[str] = []
    x: int | float | None = None
    y: int | float | None = None


class ImageObjectRefs(msgspec.Struct):
    image_id: int
    objects: list[ObjectRef]


class ImageObjectsRaw(msgspec.Struct):
    objects: list[msgspec.Raw]


class VGImage(msgspec.Struct):
    image_id: int
    url: str


_images_raw = msgspec.json.Decoder(list[msgspec.Raw])
_image_refs = msgspec.json.Decoder(ImageObjectRefs)
_image_objects_raw = msgspec.json.Decoder(ImageObjectsRaw)
_image_urls = msgspec.json.Decoder(list[VGImage])


class VisualGenome:
    """A Visual Genome folder: objects.json, image_data.json and the VG_100K*/ image folders."""

    def __init__(self, vg_dir: str | os.PathLike):
        self.dir = Path(vg_dir)
        self.objects_path = self.dir / "objects.json"
        self.images_path = self.dir / "image_data.json"
        for path in (self.objects_path, self.images_path):
            if not path.is_file():
                raise InputError(f"{path}: Visual Genome file not found")

    def image_file_names(self) -> dict[int, str]:
        """image_id -> file name relative to the VG folder: the last two parts of its url (`VG_100K/1.jpg`)."""
        data = read_bytes(self.images_path, "Visual Genome image file")
        check_utf8(data, self.images_path)
        images = decode_checked(_image_urls, data, self.images_path, "images")
        return {img.image_id: "/".join(img.url.rsplit("/", 2)[-2:]) for img in images}

    def objects_by_synset(self, wanted: Iterable[str], progress: bool = True) -> dict[str, list[tuple[int, msgspec.Raw]]]:
        """For each synset in `wanted`: (image_id, raw object JSON) of every object whose only synset
        it is and whose w*h >= 32*32, in file order. Every object must have w and h; a kept one, a box
        (x, y, w, h) that `record_box` accepts (negative sizes have a positive product)."""
        wanted = set(wanted)
        found: dict[str, list[tuple[int, msgspec.Raw]]] = defaultdict(list)
        data = read_bytes(self.objects_path, "Visual Genome objects file")
        check_utf8(data, self.objects_path)
        entries = decode_checked(_images_raw, data, self.objects_path, "images")
        for index, entry in enumerate(tqdm(entries, desc="Visual Genome images", unit="img", disable=not progress)):
            image = decode_checked(_image_refs, entry, self.objects_path, f"image entry #{index}")
            hits = [j for j, obj in enumerate(image.objects)
                    if len(obj.synsets) == 1 and obj.synsets[0] in wanted and obj.w * obj.h >= MIN_OBJECT_AREA]
            for j in hits:
                obj = image.objects[j]
                check_box({"dataset": "visual_genome", "x": obj.x, "y": obj.y, "w": obj.w, "h": obj.h},
                          f"{self.objects_path}: image {image.image_id} object #{j}")
            if hits:
                raws = _image_objects_raw.decode(entry).objects
                for j in hits:
                    found[image.objects[j].synsets[0]].append((image.image_id, raws[j]))
        return found
