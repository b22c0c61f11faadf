"""Checks a fetched file must pass before it is put in place: size and sha256 when known, then its content.

Every check raises InputError naming the file and what is wrong, and never unpickles arbitrary
objects from the arrays (`np.load(allow_pickle=False)`).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from mmovod.assets.manifest import ArrayCheck, Asset, Check, CheckpointCheck, JsonCheck
from mmovod.io.errors import InputError
from mmovod.io.arrays import load_npy
from mmovod.io.json_files import load_json


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def check_asset_file(path: str | os.PathLike, asset: Asset, label: str | None = None) -> None:
    """Raise InputError (naming `label`, default the path) unless `path` is what `asset` promises."""
    label = label or str(path)
    size = Path(path).stat().st_size
    if asset.size is not None and size != asset.size:
        raise InputError(f"{label}: {size} bytes, expected {asset.size}")
    if asset.sha256 is not None and (digest := sha256_of(path)) != asset.sha256:
        raise InputError(f"{label}: sha256 {digest}, expected {asset.sha256}")
    check_content(path, asset.check, label)


def check_content(path: str | os.PathLike, check: Check, label: str) -> None:
    if isinstance(check, ArrayCheck):
        _check_array(path, check, label)
    elif isinstance(check, JsonCheck):
        _check_json(path, check, label)
    elif isinstance(check, CheckpointCheck):
        _check_aggregator(path, check, label)
    else:
        raise TypeError(f"unknown check {check!r}")


def _check_array(path: str | os.PathLike, check: ArrayCheck, label: str) -> None:
    try:
        array = load_npy(path, mmap=True)
    except InputError as exc:
        raise InputError(f"{label}: {str(exc).split(': ', 1)[-1]}") from None
    if list(array.shape) != check.shape:
        raise InputError(f"{label}: shape {tuple(array.shape)}, expected {tuple(check.shape)}")
    if str(array.dtype) not in check.dtypes:
        raise InputError(f"{label}: dtype {array.dtype}, expected {' or '.join(check.dtypes)}")


def _check_json(path: str | os.PathLike, check: JsonCheck, label: str) -> None:
    try:
        data = load_json(path)
    except InputError as exc:
        raise InputError(f"{label}: {str(exc).split(': ', 1)[-1]}") from None
    kind = {"object": dict, "array": list}[check.type]
    if not isinstance(data, kind):
        raise InputError(f"{label}: expected a JSON {check.type}, found {type(data).__name__}")
    if check.length is not None and len(data) != check.length:
        raise InputError(f"{label}: {len(data)} entries, expected {check.length}")
    for i, item in enumerate(data if check.item_keys else ()):
        missing = [k for k in check.item_keys if not isinstance(item, dict) or k not in item]
        if missing:
            raise InputError(f"{label}: entry {i} has no {missing[0]!r}")


def _check_aggregator(path: str | os.PathLike, check: CheckpointCheck, label: str) -> None:
    from mmovod.aggregator.model import VisualAggregator

    try:
        model = VisualAggregator.from_checkpoint(path, num_layers=check.num_layers)
    except InputError as exc:
        raise InputError(f"{label}: {str(exc).split(': ', 1)[-1]}") from None
    if model.dim != check.dim:
        raise InputError(f"{label}: a {model.dim}-d aggregator, expected {check.dim}-d")
