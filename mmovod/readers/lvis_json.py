"""Partial decoding of large LVIS-format JSON files.

An LVIS train file is ~1.1 GB, most of it polygon coordinates that the category steps never look
at. These helpers decode only the fields a step needs (msgspec structs) and keep everything else as
raw JSON bytes (`msgspec.Raw`) that is written back unchanged, so memory stays a small multiple of
the file size and no polygon becomes a Python float.
"""
from __future__ import annotations

import os
from typing import IO, Any

import msgspec

from mmovod.io.atomic import atomic_open
from mmovod.io.errors import InputError
from mmovod.io.json_files import describe_json_error, map_file


class AnnotationRef(msgspec.Struct):
    """The two fields of an LVIS annotation the category steps read."""

    category_id: int
    image_id: int = -1


class ImageCategories(msgspec.Struct):
    """The image fields the --bypass counting reads (image-level labels)."""

    id: int
    pos_category_ids: list[int] = []


# what msgspec raises for bytes that are not JSON: a syntax error, a string that is not UTF-8, or a
# document nested more deeply than its recursion limit
SYNTAX_ERRORS = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)

_top_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])
_raw_list_decoder = msgspec.json.Decoder(list[msgspec.Raw])
_ann_ref_decoder = msgspec.json.Decoder(list[AnnotationRef])
_any_decoder = msgspec.json.Decoder()


def decode_checked(decoder: msgspec.json.Decoder, data: bytes | msgspec.Raw, path: str, where: str) -> Any:
    """decoder.decode(data), with schema and syntax errors as one-line InputErrors naming `path` and `where`."""
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise InputError(f"{path}: {where}: {exc}") from None
    except SYNTAX_ERRORS as exc:
        raise describe_json_error(path, exc) from None


class LvisFile:
    """An LVIS-format JSON file with its top-level values kept as raw bytes until asked for."""

    def __init__(self, path: str | os.PathLike, required: tuple[str, ...] = ("categories", "annotations")):
        self.path = str(path)
        data = map_file(path, "annotation file")
        try:
            self.top: dict[str, msgspec.Raw] = _top_decoder.decode(data)
        except msgspec.ValidationError:
            raise InputError(f"{self.path}: expected a JSON object at the top level") from None
        except SYNTAX_ERRORS as exc:
            raise describe_json_error(self.path, exc) from None
        for key in required:
            if key not in self.top:
                raise InputError(f"{self.path}: no '{key}' key")

    def categories(self) -> list[dict[str, Any]]:
        """The categories, fully decoded (they are small), each checked to have an integer id."""
        return parse_categories(self.top["categories"], self.path)

    def annotation_refs(self) -> list[AnnotationRef]:
        """(category_id, image_id) of every annotation, skipping all other fields without materialising them."""
        return decode_checked(_ann_ref_decoder, self.top["annotations"], self.path, "annotations")

    def annotations_raw(self) -> list[msgspec.Raw]:
        """Every annotation as its raw JSON bytes, in file order."""
        return decode_checked(_raw_list_decoder, self.top["annotations"], self.path, "annotations")

    def write_with(self, out_path: str | os.PathLike, arrays: dict[str, list[msgspec.Raw]]) -> None:
        """Write the document atomically with some top-level values replaced by arrays of raw items.

        Key order is kept; untouched values are copied byte for byte. The output is streamed in
        chunks, so memory never holds a second copy of the document.
        """
        with atomic_open(out_path, "wb") as handle:
            handle.write(b"{")
            for index, (key, raw) in enumerate(self.top.items()):
                handle.write((b"," if index else b"") + msgspec.json.encode(key) + b":")
                if key in arrays:
                    _write_raw_array(handle, arrays[key])
                else:
                    handle.write(raw)
            handle.write(b"}")


def _write_raw_array(handle: IO[bytes], items: list[msgspec.Raw], chunk: int = 65536) -> None:
    handle.write(b"[")
    for start in range(0, len(items), chunk):
        if start:
            handle.write(b",")
        handle.write(b",".join(items[start:start + chunk]))
    handle.write(b"]")


def parse_categories(raw: msgspec.Raw, path: str) -> list[dict[str, Any]]:
    """Decode the raw `categories` value, checking it is a list of objects with an integer id."""
    cats = decode_checked(_any_decoder, raw, path, "categories")
    if not isinstance(cats, list) or not all(isinstance(c, dict) and isinstance(c.get("id"), int)
                                             and not isinstance(c.get("id"), bool) for c in cats):
        raise InputError(f"{path}: 'categories' must be a list of objects with an integer 'id'")
    check_unique_ids(cats, path)
    return cats


def check_unique_ids(cats: list[dict[str, Any]], path: str | os.PathLike) -> None:
    """InputError naming the first category id that occurs twice: a classifier has one row per category
    in id order, so a repeated id would shift every later row."""
    seen: set[Any] = set()
    for cat in cats:
        if cat.get("id") in seen:
            raise InputError(f"{path}: category id {cat.get('id')} occurs more than once in 'categories'")
        seen.add(cat.get("id"))


class CategoriesAndAnnotations(msgspec.Struct):
    categories: msgspec.Raw
    annotations: list[AnnotationRef]


class CategoriesAndImages(msgspec.Struct):
    categories: msgspec.Raw
    images: list[ImageCategories]


def decode_fields(path: str | os.PathLike, shape: type[msgspec.Struct]) -> Any:
    """Decode only the fields of `shape` from an LVIS file in a single pass; everything else is skipped.

    A missing top-level key becomes InputError "no 'key' key", like LvisFile.
    """
    data = map_file(path, "annotation file")
    try:
        return msgspec.json.decode(data, type=shape)
    except msgspec.ValidationError as exc:
        text = str(exc)
        top_level = " - at `" not in text
        if top_level and text.startswith("Object missing required field"):
            raise InputError(f"{path}: no '{text.split('`')[1]}' key") from None
        if top_level and text.startswith("Expected `object`"):
            raise InputError(f"{path}: expected a JSON object at the top level") from None
        raise InputError(f"{path}: {text}") from None
    except SYNTAX_ERRORS as exc:
        raise describe_json_error(path, exc) from None


def check_category_ids(refs: list[AnnotationRef], known_ids: set[int], path: str) -> None:
    """Raise InputError naming the first annotation whose category_id is not a category."""
    for index, ref in enumerate(refs):
        if ref.category_id not in known_ids:
            raise InputError(
                f"{path}: annotation #{index} has category_id {ref.category_id}, which is not a category"
            )


class ExemplarAnnRef(msgspec.Struct):
    """The annotation fields the exemplar collation reads (the rest stays raw JSON)."""

    category_id: int
    image_id: int
    area: float
    bbox: list[float] | None = None


class ImageUrl(msgspec.Struct):
    """An LVIS image's id and COCO url (whose last two parts are `<split>/<file>`)."""

    id: int
    coco_url: str


_exemplar_ref_decoder = msgspec.json.Decoder(list[ExemplarAnnRef])
_image_url_decoder = msgspec.json.Decoder(list[ImageUrl])


def exemplar_refs(lvis: LvisFile) -> list[ExemplarAnnRef]:
    return decode_checked(_exemplar_ref_decoder, lvis.top["annotations"], lvis.path, "annotations")


def image_urls(lvis: LvisFile) -> list[ImageUrl]:
    if "images" not in lvis.top:
        raise InputError(f"{lvis.path}: no 'images' key")
    return decode_checked(_image_url_decoder, lvis.top["images"], lvis.path, "images")
