"""The build's output folder: checked (or created) before use, and its small files rewritten only
when their bytes change."""
from __future__ import annotations

import os
from pathlib import Path

from mmovod.io.atomic import check_output_dir, make_output_dir, write_bytes_atomic
from mmovod.io.errors import InputError


def prepare_out_dir(out_dir: str | os.PathLike, create: bool = True) -> Path:
    """The output folder, checked to be a writable folder or creatable (its parent exists and is
    writable), and created if `create`."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: --out-dir is a file, not a folder")
    return make_output_dir(out) if create else check_output_dir(out)


def write_if_changed(path: Path, payload: bytes) -> None:
    """Write `payload` to `path` atomically, unless the file already holds exactly these bytes."""
    if not path.is_file() or path.read_bytes() != payload:
        write_bytes_atomic(path, payload)
