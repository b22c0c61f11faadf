"""The released-asset manifest: what to fetch, from where, to which path, and how to check it.

The default manifest is `mmovod/data/released_assets.json` (schema version 1). Each asset has a
`name`, a `group` (`checkpoints`, `metadata`), the upstream `url`, the relative destination `path`
(also its name on a mirror), a `check` (`array`: shape and allowed dtypes; `json`: top-level type,
length, keys of each item; `aggregator_checkpoint`: strict keys for `num_layers` layers and `dim`),
optionally `unpack: "tar"` (the download may be a tar archive holding the file), `size` and
`sha256` of the file at `path` when known, and the `source` document that links the URL.
"""
from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath
from typing import Literal, Sequence

import msgspec

from mmovod.io.errors import InputError
from mmovod.io.json_files import describe_json_error, read_bytes

MANIFEST_VERSION = 1
DEFAULT_MANIFEST = Path(__file__).parents[1] / "data" / "released_assets.json"


class ArrayCheck(msgspec.Struct, tag="array", tag_field="kind", forbid_unknown_fields=True):
    shape: list[int]
    dtypes: list[str]


class JsonCheck(msgspec.Struct, tag="json", tag_field="kind", forbid_unknown_fields=True):
    type: Literal["object", "array"]
    length: int | None = None
    item_keys: list[str] = []


class CheckpointCheck(msgspec.Struct, tag="aggregator_checkpoint", tag_field="kind", forbid_unknown_fields=True):
    num_layers: int
    dim: int


Check = ArrayCheck | JsonCheck | CheckpointCheck


class Asset(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: str
    group: str
    url: str
    path: str
    check: Check
    unpack: Literal["tar"] | None = None
    size: int | None = None
    sha256: str | None = None
    source: str = ""
    description: str = ""


class Manifest(msgspec.Struct, forbid_unknown_fields=True):
    version: int
    assets: list[Asset]


def load_manifest(path: str | os.PathLike = DEFAULT_MANIFEST) -> list[Asset]:
    """The assets of a manifest file, validated (schema, unique names, safe relative paths)."""
    try:
        manifest = msgspec.json.decode(read_bytes(path, "asset manifest"), type=Manifest)
    except msgspec.ValidationError as exc:
        raise InputError(f"{path}: not an asset manifest ({exc})") from None
    except (msgspec.DecodeError, RecursionError) as exc:
        raise describe_json_error(path, exc) from None
    if manifest.version != MANIFEST_VERSION:
        raise InputError(f"{path}: manifest version {manifest.version}, this mmovod reads {MANIFEST_VERSION}")
    seen: set[str] = set()
    for asset in manifest.assets:
        if asset.name in seen:
            raise InputError(f"{path}: asset name {asset.name!r} appears twice")
        seen.add(asset.name)
        rel = PurePosixPath(asset.path)
        if rel.is_absolute() or ".." in rel.parts or not rel.name:
            raise InputError(f"{path}: asset {asset.name}: path {asset.path!r} must be relative, without '..'")
        if asset.sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", asset.sha256):
            raise InputError(f"{path}: asset {asset.name}: sha256 must be 64 lowercase hex digits")
    return manifest.assets


def select_assets(assets: Sequence[Asset], names: Sequence[str] | None) -> list[Asset]:
    """The assets named (by name or group) in `names`, in manifest order; all of them for None."""
    if names is None:
        return list(assets)
    known = {a.name for a in assets} | {a.group for a in assets}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InputError(f"unknown asset {unknown[0]!r} (known: {', '.join(sorted(known))})")
    wanted = set(names)
    return [a for a in assets if a.name in wanted or a.group in wanted]
