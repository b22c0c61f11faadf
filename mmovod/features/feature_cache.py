"""The CLIP feature cache on disk: float16 shards plus an index (class -> rows), read memory-mapped.

Layout of a cache folder:
  index.json          what made the cache (CLIP model, views, TTA seed, source) and the plan:
                      class names, `class_offsets` (class c owns rows [offsets[c], offsets[c+1])),
                      shard size and count, `items_sha256` (fingerprint of the plan)
  items.txt           one line per row, in row order: the item the row encodes (an image path
                      relative to the source root, or an exemplar record id)
  shard-00000.npy ... float16 arrays of shape (rows_in_shard, views, dim): raw (not normalised) CLIP
                      image embeddings, as the vision-classifier tools feed them to the aggregator; shard i holds rows [i * shard_size, (i + 1) * shard_size)

Rows are grouped by class, so a class is one contiguous range. Each shard is written atomically by
the rank that owns it, so a re-run skips finished shards and a crash never leaves a half shard.
"""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mmovod.io.arrays import load_npy, save_npy
from mmovod.io.atomic import check_output_dir, output_error, write_bytes_atomic
from mmovod.io.errors import InputError
from mmovod.io.launcher import command
from mmovod.io.wording import plural
from mmovod.io.json_files import load_json, save_json

log = logging.getLogger(__name__)

CACHE_FORMAT = "mmovod-clip-feature-cache"
CACHE_VERSION = 2
RENAMED_INDEX_KEYS = {"normalised": "normalized", "views": "num_views"}
"""Version-1 spellings of index keys -> the current ones (version-1 caches stay readable)."""
INDEX_FILE = "index.json"
ITEMS_FILE = "items.txt"
DEFAULT_SHARD_SIZE = 32768
FEATURE_DTYPE = np.float16


@dataclass
class ClassItems:
    """One class of a source: its name and its items (image paths or record ids), in a fixed order."""

    name: str
    items: list[str]


@dataclass
class CachePlan:
    """Which rows the cache holds and how they are split into shards (identical on every rank)."""

    classes: list[str]
    class_offsets: list[int]
    items: list[str]
    shard_size: int

    @classmethod
    def from_classes(cls, classes: Sequence[ClassItems], shard_size: int) -> "CachePlan":
        if shard_size < 1:
            raise InputError(f"--shard-size must be at least 1, got {shard_size}")
        offsets = [0]
        items: list[str] = []
        for c in classes:
            items.extend(c.items)
            offsets.append(len(items))
        return cls([c.name for c in classes], offsets, items, shard_size)

    @property
    def num_rows(self) -> int:
        return len(self.items)

    @property
    def num_shards(self) -> int:
        return -(-self.num_rows // self.shard_size)

    def shard_rows(self, shard: int) -> range:
        start = shard * self.shard_size
        return range(start, min(start + self.shard_size, self.num_rows))

    def row_labels(self) -> np.ndarray:
        """(rows,) int64 class index of every row."""
        return np.repeat(np.arange(len(self.classes)), np.diff(self.class_offsets))

    def items_sha256(self) -> str:
        digest = hashlib.sha256()
        for name, start, end in zip(self.classes, self.class_offsets, self.class_offsets[1:]):
            digest.update(f"{name}\t{start}\t{end}\n".encode())
        for item in self.items:
            digest.update(item.encode() + b"\n")
        digest.update(str(self.shard_size).encode())
        return digest.hexdigest()


@dataclass
class CacheMeta:
    """What made the features: needed to refuse mixing caches of different CLIP models or settings."""

    clip: dict[str, Any]
    dim: int
    views: int
    extra: dict[str, Any] = field(default_factory=dict)


def shard_name(shard: int) -> str:
    return f"shard-{shard:05d}.npy"


def index_document(plan: CachePlan, meta: CacheMeta) -> dict[str, Any]:
    return {
        "format": CACHE_FORMAT,
        "version": CACHE_VERSION,
        "clip": meta.clip,
        "dim": meta.dim,
        "num_views": meta.views,
        "dtype": "float16",
        "normalized": False,
        "shard_size": plan.shard_size,
        "num_rows": plan.num_rows,
        "num_shards": plan.num_shards,
        "classes": plan.classes,
        "class_offsets": plan.class_offsets,
        "items_file": ITEMS_FILE,
        "items_sha256": plan.items_sha256(),
        **meta.extra,
    }


def current_index(doc: Any) -> Any:
    """An index document in the current spelling: a version-1 index has its keys renamed
    (`RENAMED_INDEX_KEYS`) and is otherwise the same (anything but a JSON object is returned as is)."""
    if not isinstance(doc, dict) or doc.get("version") != 1:
        return doc
    return {**{RENAMED_INDEX_KEYS.get(k, k): v for k, v in doc.items()}, "version": CACHE_VERSION}


def _comparable(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in ("classes", "class_offsets")}


def prepare_cache_dir(out: str | os.PathLike, plan: CachePlan, meta: CacheMeta, write: bool = True) -> Path:
    """Create (or re-open for resuming) a cache folder for `plan`; returns its path.

    An existing index must describe the same plan and settings (same CLIP model, views, TTA, items);
    otherwise InputError names what differs, so two different caches never share one folder.
    Only the writer (`write=True`, rank 0) writes `index.json` and `items.txt`.
    """
    root = Path(out)
    doc = index_document(plan, meta)
    index = root / INDEX_FILE
    if index.is_file():
        old = read_index(index)
        if old.get("clip") != doc["clip"]:
            raise InputError(
                f"{root}: holds features of CLIP {describe_clip(old.get('clip'))}, not of the requested "
                f"{describe_clip(doc['clip'])} (use another --out)"
            )
        old_c, new_c = _comparable(old), _comparable(doc)
        differing = sorted(k for k in set(old_c) | set(new_c) if old_c.get(k) != new_c.get(k))
        if differing:
            raise InputError(
                f"{root}: holds a cache made with other settings ({', '.join(differing)} differ); "
                "use another --out to make a new cache"
            )
        return root
    if not write:
        return root
    check_output_dir(root)
    orphans = sorted(root.glob("shard-*.npy")) if root.is_dir() else []
    if orphans:  # the index is written before any shard: these are of a cache whose index was lost
        raise InputError(f"{root}: holds {orphans[0].name} but no {INDEX_FILE}, so what made its shards is unknown; "
                         "use another --out (or delete the shards) to make a new cache")
    try:
        root.mkdir(exist_ok=True)
    except OSError as exc:
        raise output_error(root, exc) from None
    write_bytes_atomic(root / ITEMS_FILE, "".join(item + "\n" for item in plan.items).encode())
    save_json(index, doc, indent=True)
    return root


def describe_clip(clip: Any) -> str:
    if not isinstance(clip, dict):
        return "unknown"
    return f"{clip.get('clip_model')} ({clip.get('pretrained') or 'random weights'})"


def shard_is_complete(path: Path, rows: int, views: int, dim: int) -> bool:
    """True when `path` is a readable float16 shard of shape (rows, views, dim)."""
    try:
        array = load_npy(path, mmap=True)
    except InputError:
        return False
    return array.shape == (rows, views, dim) and array.dtype == FEATURE_DTYPE


def write_shard(root: Path, shard: int, features: np.ndarray) -> None:
    """Write one shard atomically as float16 (rows, views, dim)."""
    save_npy(root / shard_name(shard), np.ascontiguousarray(features, dtype=FEATURE_DTYPE))


def shards_kept(root: Path, num_shards: int) -> str | None:
    """What an interrupted encoding leaves in the cache folder `root` (shards are written atomically,
    so a shard file is a finished one): "N finished shards of M are kept in ROOT" (N may be 0: the folder
    and its index are kept, and a rerun starts from them), or None when the folder is not there."""
    if not root.is_dir():
        return None
    finished = sum((root / shard_name(s)).is_file() for s in range(num_shards))
    return f"{plural(finished, 'finished shard', 'finished shards')} of {num_shards} {'is' if finished == 1 else 'are'} kept in {root}"


# index fields a reader relies on, with their JSON type; the counts below must be at least 1, the rest at least 0
INDEX_FIELDS: dict[str, type] = {"clip": dict, "dim": int, "num_views": int, "shard_size": int, "num_rows": int,
                                 "num_shards": int, "classes": list, "class_offsets": list, "items_sha256": str}
POSITIVE_INDEX_FIELDS = ("dim", "num_views", "shard_size")


def check_index_fields(doc: dict[str, Any], index: Path) -> None:
    """InputError naming the first index field that is missing or of the wrong kind."""
    for key, kind in INDEX_FIELDS.items():
        value = doc.get(key)
        ok = isinstance(value, kind) and not isinstance(value, bool)
        if ok and kind is int:
            ok = value >= (1 if key in POSITIVE_INDEX_FIELDS else 0)
        if ok and key == "classes":
            ok = all(isinstance(v, str) for v in value)
        if ok and key == "class_offsets":
            ok = all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        if not ok:
            problem = "missing" if key not in doc else f"has a wrong value {value!r:.40}"
            raise InputError(f"{index}: cache index field '{key}' {problem} (re-run {command('cache_clip_features')})")


def read_index(index: Path) -> dict[str, Any]:
    """The decoded `index.json` of a cache, checked: an object of this format and version whose fields
    have the types readers rely on (`check_index_fields`); InputError naming the file otherwise."""
    doc = current_index(load_json(index, "cache index"))
    if not isinstance(doc, dict) or doc.get("format") != CACHE_FORMAT:
        raise InputError(f"{index}: not an mmovod feature-cache index")
    if doc.get("version") != CACHE_VERSION:
        raise InputError(f"{index}: cache format version {doc.get('version')!r:.20}, this mmovod reads {CACHE_VERSION}")
    check_index_fields(doc, index)
    return doc


class FeatureCache:
    """Read-only, memory-mapped view of a finished cache.

    `gather(rows, views)` returns float16 `(n, dim)` features; only the touched pages are read, so a
    12 GB cache costs page cache, not process memory. Missing, truncated or mis-shaped shards raise
    InputError naming the shard.
    """

    def __init__(self, path: str | os.PathLike):
        self.root = Path(path)
        index = self.root / INDEX_FILE
        if not self.root.is_dir():
            raise InputError(f"{self.root}: feature cache folder not found")
        if not index.is_file():
            raise InputError(f"{self.root}: not a feature cache (no {INDEX_FILE}; make one with {command('cache_clip_features')})")
        doc = read_index(index)
        self.index = doc
        self.clip: dict[str, Any] = doc["clip"]
        self.dim = doc["dim"]
        self.views = doc["num_views"]
        self.shard_size = doc["shard_size"]
        self.num_rows = doc["num_rows"]
        self.classes: list[str] = list(doc["classes"])
        self.class_offsets = np.asarray(doc["class_offsets"], dtype=np.int64)
        offsets = self.class_offsets
        if (len(offsets) != len(self.classes) + 1 or offsets[0] != 0 or offsets[-1] != self.num_rows
                or (np.diff(offsets) < 0).any()):
            raise InputError(f"{index}: class_offsets do not match classes and num_rows")
        if doc["num_shards"] != -(-self.num_rows // self.shard_size):
            raise InputError(f"{index}: num_shards does not match num_rows and shard_size")
        self.shards = [self._open_shard(i) for i in range(int(doc["num_shards"]))]

    def _open_shard(self, shard: int) -> np.ndarray:
        path = self.root / shard_name(shard)
        rows = min(self.shard_size, self.num_rows - shard * self.shard_size)
        if not path.is_file():
            raise InputError(f"{path}: shard missing; the cache is unfinished (re-run {command('cache_clip_features')} to finish it)")
        try:
            array = load_npy(path, mmap=True)
        except InputError as exc:
            raise InputError(f"{path}: corrupt shard ({str(exc).split(': ', 1)[-1]}); delete it and re-run the cache tool") from None
        if array.shape != (rows, self.views, self.dim) or array.dtype != FEATURE_DTYPE:
            raise InputError(
                f"{path}: corrupt shard (shape {array.shape} {array.dtype}, expected ({rows}, {self.views}, {self.dim}) float16); "
                "delete it and re-run the cache tool"
            )
        return array

    @property
    def class_sizes(self) -> np.ndarray:
        return np.diff(self.class_offsets)

    def class_rows(self, name: str) -> range:
        c = self.classes.index(name)
        return range(int(self.class_offsets[c]), int(self.class_offsets[c + 1]))

    def shard_of_row(self, row: int) -> Path:
        return self.root / shard_name(row // self.shard_size)

    def gather(self, rows: np.ndarray, views: np.ndarray | None = None) -> np.ndarray:
        """float16 `(n, dim)`: row `rows[i]`, view `views[i]` (view 0 when `views` is None)."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        views = np.zeros_like(rows) if views is None else np.asarray(views, dtype=np.int64).reshape(-1)
        out = np.empty((len(rows), self.dim), dtype=FEATURE_DTYPE)
        shard_ids = rows // self.shard_size
        if len(self.shards) == 1:
            out[:] = self.shards[0][rows, views]
            return out
        order = np.argsort(shard_ids, kind="stable")
        sorted_ids = shard_ids[order]
        bounds = np.flatnonzero(np.diff(sorted_ids)) + 1
        for chunk in np.split(order, bounds):
            if len(chunk):
                shard = int(shard_ids[chunk[0]])
                out[chunk] = self.shards[shard][rows[chunk] - shard * self.shard_size, views[chunk]]
        return out

    def check_finite(self, rows: np.ndarray, features: np.ndarray) -> None:
        """Raise InputError naming the shard of the first row whose features are not finite."""
        rows = np.asarray(rows).reshape(-1)
        bad = ~np.isfinite(features.reshape(len(rows), -1)).all(axis=1)
        if bad.any():
            row = int(rows[int(np.argmax(bad))])
            raise InputError(f"{self.shard_of_row(row)}: corrupt shard (non-finite features at row {row}); delete it and re-run the cache tool")


def write_array_cache(
    out: str | os.PathLike,
    class_features: Sequence[tuple[str, np.ndarray]],
    clip: dict[str, Any],
    shard_size: int,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a cache from in-memory features: `(name, (n_c, views, dim) array)` per class.

    For generated data (tests, benchmarks) and for converting features computed elsewhere; items
    are named `<class>/<i>`.
    """
    if not class_features:
        raise InputError(f"{out}: no classes to cache")
    _, first = class_features[0]
    views, dim = first.shape[1], first.shape[2]
    plan = CachePlan.from_classes([ClassItems(n, [f"{n}/{i}" for i in range(len(f))]) for n, f in class_features], shard_size)
    root = prepare_cache_dir(out, plan, CacheMeta(clip, dim, views, extra or {}))
    stacked = np.concatenate([f for _, f in class_features])
    for shard in range(plan.num_shards):
        rows = plan.shard_rows(shard)
        write_shard(root, shard, stacked[rows.start:rows.stop])
    return root


def check_cache_clip(cache: FeatureCache, clip_model: str | None, pretrained: str | None) -> None:
    """Refuse a cache made with another CLIP model (or weights) than the requested one, naming both."""
    if clip_model is not None and cache.clip.get("clip_model") != clip_model:
        raise InputError(f"{cache.root}: cache made with CLIP {describe_clip(cache.clip)}, but --clip_model {clip_model} was requested")
    if pretrained is not None and cache.clip.get("pretrained") != pretrained:
        raise InputError(f"{cache.root}: cache made with CLIP {describe_clip(cache.clip)}, but --pretrained {pretrained} was requested")
