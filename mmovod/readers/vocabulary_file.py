"""Vocabulary files: the classes to build classifiers for, in class (row) order.

Three formats, chosen by the file:
- text (any name not ending in .json / .yaml / .yml): one class per line, `name[, synonym, ...]`
  (`hard hat, safety helmet`); blank lines and `#` comments (whole lines or the end of a line)
  are ignored;
- a JSON (`.json`) or YAML (`.yaml`, `.yml`) list of classes, each a name or an object with `name`
  and optional `synonyms` (strings), `descriptions` (sentences), `exemplars` (image paths, or
  objects `{image: path, bbox: [x, y, w, h]}`, paths relative to the vocabulary file's folder) and
  `id` (an integer category id);
- an LVIS- or COCO-format annotation file (`.json` holding an object with `categories`): its
  categories in ascending id, with LVIS `synonyms` when present.

A class's `synonyms` are all the names it goes by, its own name first (LVIS files: the LVIS list as
written); the Detic `--avg_synonyms` prompt averages over them. Empty names, two classes whose
names differ only in case, spaces, underscores or Unicode form (`café` composed or with a combining
accent, full-width letters), and a file without classes are InputErrors naming the file and the
line of both (the category id for annotation files).
"""
from __future__ import annotations

import json
import math
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmovod.io.errors import InputError
from mmovod.io.json_files import read_bytes
from mmovod.readers.lvis_json import LvisFile

ENTRY_KEYS = ("name", "synonyms", "descriptions", "exemplars", "id")
YAML_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class ExemplarRef:
    """An exemplar image named in a vocabulary file; `bbox` is `[x, y, w, h]` in pixels, None for the whole image."""

    image: str
    bbox: tuple[float, float, float, float] | None = None


@dataclass(frozen=True)
class VocabClass:
    """One class of a vocabulary; `where` says where it was defined (`file: line N`)."""

    name: str
    synonyms: tuple[str, ...]
    descriptions: tuple[str, ...] = ()
    exemplars: tuple[ExemplarRef, ...] = ()
    category_id: int | None = None
    where: str = ""

    def as_category(self, index: int) -> dict[str, Any]:
        """The LVIS-style category dict the text-classifier helpers take (`id` is the row index)."""
        return {"id": index, "name": self.name, "synonyms": list(self.synonyms)}


@dataclass(frozen=True)
class Vocabulary:
    """The classes of a vocabulary file in row order; `format` is text, json, yaml or annotations."""

    path: Path
    format: str
    classes: tuple[VocabClass, ...]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    def __len__(self) -> int:
        return len(self.classes)


def normalise_name(name: str) -> str:
    """The form names are compared in: Unicode NFKC (composed accents, full-width and ligature forms
    as their plain letters), case-folded, `_` as a space, runs of spaces collapsed."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    return " ".join(folded.replace("_", " ").split())


def _check_unique(classes: list[VocabClass], path: Path) -> None:
    if not classes:
        raise InputError(f"{path}: the vocabulary has no classes")
    seen: dict[str, VocabClass] = {}
    for cls in classes:
        key = normalise_name(cls.name)
        if key in seen:
            raise InputError(f"{cls.where}: class {cls.name!r} repeats {seen[key].name!r} "
                             f"({seen[key].where.removeprefix(str(path) + ': ')})")
        seen[key] = cls


def _names(main: str, extra: list[str]) -> tuple[str, ...]:
    """`main` followed by the extra names that differ from it and from each other."""
    out = [main]
    for name in extra:
        if name not in out:
            out.append(name)
    return tuple(out)


def _read_text(path: Path, data: bytes) -> list[VocabClass]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    classes = []
    for number, line in enumerate(text.splitlines(), start=1):
        content = line.split("#", 1)[0].strip()
        if not content:
            continue
        parts = [p.strip() for p in content.split(",")]
        where = f"{path}: line {number}"
        if not parts[0]:
            raise InputError(f"{where}: empty class name")
        if not all(parts[1:]):
            raise InputError(f"{where}: empty synonym after a comma")
        classes.append(VocabClass(parts[0], _names(parts[0], parts[1:]), where=where))
    return classes


def _strings(value: Any, key: str, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(s, str) and s.strip() for s in value):
        raise InputError(f"{where}: '{key}' must be a list of non-empty strings")
    return [s.strip() for s in value]


def _bbox(value: Any, where: str) -> tuple[float, float, float, float]:
    if (not isinstance(value, list) or len(value) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)):
        raise InputError(f"{where}: 'bbox' must be [x, y, w, h] (four numbers), found {value!r}")
    x, y, w, h = (float(v) for v in value)
    if w <= 0 or h <= 0:
        raise InputError(f"{where}: 'bbox' {value!r} has no area")
    return x, y, w, h


def _exemplar(value: Any, base: Path, where: str) -> ExemplarRef:
    if isinstance(value, str) and value.strip():
        return ExemplarRef(str(base / value.strip()))
    if isinstance(value, dict) and isinstance(value.get("image"), str) and value["image"].strip():
        unknown = sorted(set(value) - {"image", "bbox"})
        if unknown:
            raise InputError(f"{where}: unknown exemplar key {unknown[0]!r} (expected image, bbox)")
        bbox = _bbox(value["bbox"], where) if "bbox" in value else None
        return ExemplarRef(str(base / value["image"].strip()), bbox)
    raise InputError(f"{where}: each exemplar must be an image path or {{image: path, bbox: [x, y, w, h]}}, "
                     f"found {value!r}")


def _class_from_entry(entry: Any, where: str, base: Path) -> VocabClass:
    """One entry of a JSON / YAML class list (a name, or an object with the ENTRY_KEYS)."""
    if isinstance(entry, str):
        entry = {"name": entry}
    if isinstance(entry, (bool, int, float)):
        raise InputError(f"{where}: class name {entry!r} is not a string (quote names that read as numbers or booleans)")
    if not isinstance(entry, dict):
        raise InputError(f"{where}: expected a class name or an object with 'name', found {type(entry).__name__}")
    unknown = sorted(set(entry) - set(ENTRY_KEYS))
    if unknown:
        raise InputError(f"{where}: unknown key {unknown[0]!r} (expected {', '.join(ENTRY_KEYS)})")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"{where}: empty class name" if isinstance(name, str) or name is None
                         else f"{where}: 'name' must be a string, found {name!r}")
    name = name.strip()
    category_id = entry.get("id")
    if category_id is not None and (not isinstance(category_id, int) or isinstance(category_id, bool)):
        raise InputError(f"{where}: 'id' must be an integer, found {category_id!r}")
    synonyms = _strings(entry.get("synonyms", []), "synonyms", where)
    descriptions = _strings(entry.get("descriptions", []), "descriptions", where)
    exemplars = entry.get("exemplars", [])
    if not isinstance(exemplars, list):
        raise InputError(f"{where}: 'exemplars' must be a list")
    return VocabClass(name, _names(name, synonyms), tuple(descriptions),
                      tuple(_exemplar(e, base, where) for e in exemplars), category_id, where)


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _json_items(text: str) -> list[tuple[Any, int]]:
    """The items of a top-level JSON array with the line each starts on (raises json.JSONDecodeError)."""
    decoder = json.JSONDecoder()
    pos = _skip_space(text, 0)
    if text[pos:pos + 1] != "[":
        raise json.JSONDecodeError("expected a list of classes", text, pos)
    items: list[tuple[Any, int]] = []
    pos = _skip_space(text, pos + 1)
    line, counted = 1, 0
    while text[pos:pos + 1] != "]":
        if items:
            if text[pos:pos + 1] != ",":
                raise json.JSONDecodeError("expected ',' or ']'", text, pos)
            pos = _skip_space(text, pos + 1)
        line += text.count("\n", counted, pos)
        counted = pos
        value, pos = decoder.raw_decode(text, pos)
        items.append((value, line))
        pos = _skip_space(text, pos)
        if pos >= len(text):
            raise json.JSONDecodeError("unterminated list", text, pos)
    if _skip_space(text, pos + 1) != len(text):
        raise json.JSONDecodeError("extra data after the list", text, pos + 1)
    return items


def _read_json_list(path: Path, data: bytes) -> list[VocabClass]:
    try:
        items = _json_items(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})") from None
    except RecursionError:
        raise InputError(f"{path}: not valid JSON (nested too deeply)") from None
    return [_class_from_entry(entry, f"{path}: line {line}", path.parent) for entry, line in items]


def _read_yaml(path: Path, data: bytes) -> list[VocabClass]:
    import yaml

    try:
        doc = yaml.safe_load(data)
        # the node tree (no Python objects) gives each list item's line
        root = yaml.compose(data, Loader=yaml.SafeLoader)
    except RecursionError:
        raise InputError(f"{path}: not valid YAML (nested too deeply)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"line {mark.line + 1} column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"{path}: not valid YAML ({at}{problem})") from None
    if doc is None:
        return []
    if not isinstance(doc, list):
        raise InputError(f"{path}: expected a YAML list of classes, found {type(doc).__name__}")
    lines = [node.start_mark.line + 1 for node in root.value]
    return [_class_from_entry(entry, f"{path}: line {line}", path.parent) for entry, line in zip(doc, lines)]


def _read_annotations(path: Path) -> list[VocabClass]:
    cats = sorted(LvisFile(path, required=("categories",)).categories(), key=lambda c: c["id"])
    classes = []
    for cat in cats:
        where = f"{path}: category id {cat['id']}"
        name = cat.get("name")
        if not isinstance(name, str) or not name.strip():
            raise InputError(f"{where}: empty class name" if isinstance(name, str) else f"{where}: no string 'name'")
        synonyms = cat.get("synonyms")
        if synonyms is None:
            synonyms = [name]
        elif not isinstance(synonyms, list) or not synonyms or not all(isinstance(s, str) and s for s in synonyms):
            raise InputError(f"{where}: 'synonyms' must be a non-empty list of strings")
        classes.append(VocabClass(name, tuple(synonyms), category_id=cat["id"], where=where))
    return classes


def read_vocabulary(path: str | os.PathLike) -> Vocabulary:
    """Read a vocabulary file in any of the formats of the module docstring."""
    p = Path(path)
    data = read_bytes(p, "vocabulary file")
    suffix = p.suffix.lower()
    if suffix in YAML_SUFFIXES:
        fmt, classes = "yaml", _read_yaml(p, data)
    elif suffix == ".json" and data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"{":
        fmt, classes = "annotations", _read_annotations(p)
    elif suffix == ".json":
        fmt, classes = "json", _read_json_list(p, data)
    else:
        fmt, classes = "text", _read_text(p, data)
    _check_unique(classes, p)
    return Vocabulary(p, fmt, tuple(classes))
