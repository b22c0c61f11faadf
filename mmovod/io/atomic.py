"""Atomic file writes: a temp file in the destination folder, renamed into place when complete.

Output targets are checked before any expensive work (`check_output_path`, `check_output_dir`), and
an OSError while writing (disk full, quota, a folder that turned read-only) becomes one InputError
naming the output (`output_error`), so tools end in one line, never a traceback.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator

from mmovod.io.errors import InputError


def output_error(path: str | os.PathLike, exc: OSError) -> InputError:
    """The one-line InputError for an OSError raised while writing the output `path`."""
    return InputError(f"{path}: cannot write ({exc.strerror or type(exc).__name__})")


def _check_writable_folder(folder: Path, out: Path) -> None:
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"{out}: cannot write into {folder} (permission denied or read-only file system)")


def check_output_path(path: str | os.PathLike) -> Path:
    """Return `path` as a Path, or raise InputError when it cannot become an output file: it is a
    folder, or its folder does not exist or cannot be written."""
    out = Path(path)
    parent = out.parent
    if out.is_dir():
        raise InputError(f"{out}: is a folder, expected an output file name")
    if not parent.is_dir():
        what = "is not a folder" if parent.exists() else "does not exist (create it first)"
        raise InputError(f"{out}: output folder {parent} {what}")
    _check_writable_folder(parent, out)
    return out


def check_output_dir(path: str | os.PathLike, parents: bool = False) -> Path:
    """Return `path` as a Path, or raise InputError when it cannot become an output folder: it is a
    file, or the folder it is made in is missing (unless `parents`: then the nearest existing
    ancestor must be a folder) or cannot be written."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: is a file, expected an output folder")
    base = out
    while parents and not base.exists() and base != base.parent:
        base = base.parent
    if not base.exists():
        base = out.parent
        if not base.is_dir():
            raise InputError(f"{out}: output folder {base} does not exist (create it first)")
    if not base.is_dir():
        raise InputError(f"{out}: {base} is a file, expected a folder")
    _check_writable_folder(base, out)
    return out


def make_output_dir(path: str | os.PathLike, parents: bool = False) -> Path:
    """`check_output_dir(path, parents)`, then create the folder if missing (with its missing parents
    when `parents`); an OSError while creating it is `output_error`."""
    out = check_output_dir(path, parents)
    try:
        out.mkdir(parents=parents, exist_ok=True)
    except OSError as exc:
        raise output_error(out, exc) from None
    return out


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temp file beside `path`; on clean exit fsync and rename it over `path`, else delete it.

    An OSError while writing (from the caller's writes too) becomes `output_error(path)`.
    """
    out = check_output_path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    except OSError as exc:
        raise output_error(out, exc) from None
    try:
        with os.fdopen(fd, mode) as handle:
            os.fchmod(fd, 0o666 & ~_current_umask())  # mkstemp makes 0600; give the file the mode open() would
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, out)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise output_error(out, exc) from None
        raise


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data)
