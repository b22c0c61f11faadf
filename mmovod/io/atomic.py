"""Atomic file writes: a temp file in the destination folder, renamed into place when complete.

Output targets are checked before any expensive work (`check_output_path`, `check_output_dir`), and
an OSError while writing (disk full, quota, a folder that turned read-only) becomes one InputError
naming the output (`output_error`), so tools end in one line, never a traceback. Outputs that belong
together are renamed into place only when all are written (`write_files_together`). Temp files are
named `.<output name>.<pid>.<random>.tmp`; one left by a killed writer is removed by the next write
of that output (`remove_stale_temps`). A whole tree is written into a staged folder beside its
destination and moved into place when complete (`staged_folder`). Every output put in place is
noted (`placed_outputs`), so a tool interrupted after writing one can say so.
"""
from __future__ import annotations

import contextlib
import errno
import glob
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Callable, Iterable, Iterator

from mmovod.io.errors import InputError


# errors that say the disk, not the file, is the problem: named as such whatever text came with them
DISK_FULL = {code: os.strerror(code) for code in (errno.ENOSPC, errno.EDQUOT)}
NAME_MAX = 255  # bytes in one file or folder name (Linux, macOS, Windows file systems)
PATH_MAX = 4095  # bytes in a whole path (Linux)
_PLACED: list[Path] = []  # every output this process put in place, in order


def _place(tmp: str | os.PathLike, out: Path) -> None:
    os.replace(tmp, out)
    _PLACED.append(out)


def placed_outputs(since: int = 0) -> list[Path]:
    """The outputs this process's atomic writes put in place, complete, from the `since`-th on
    (`len(placed_outputs())` marks the start of a run)."""
    return _PLACED[since:]


def _error_code(exc: OSError) -> int | None:
    if exc.errno is None and len(exc.args) == 1 and isinstance(exc.args[0], int):
        return exc.args[0]  # OSError(errno.ENOSPC): the code alone, as some writers raise it
    return exc.errno


def disk_full_reason(exc: BaseException) -> str | None:
    """"No space left on device" (or the quota's words) for an OSError saying the disk, not the file, is
    the problem; None for any other exception."""
    return DISK_FULL.get(_error_code(exc)) if isinstance(exc, OSError) else None


def output_error(path: str | os.PathLike, exc: OSError, doing: str = "cannot write") -> InputError:
    """The one-line InputError for an OSError raised while writing the output `path`: a full disk or
    quota is named as such (also when the error came without its text), with the folder to free space
    in. Every writer maps its OSError through here, so a full disk reads the same in every tool."""
    code = _error_code(exc)
    reason = DISK_FULL.get(code) or exc.strerror or (os.strerror(code) if code else type(exc).__name__)
    advice = ""
    if code in DISK_FULL:
        out = Path(path)
        advice = f"; free space in {out if out.is_dir() else out.parent} or write elsewhere"
    return InputError(f"{path}: {doing} ({reason}){advice}")


def _check_writable_folder(folder: Path, out: Path) -> None:
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"{out}: cannot write into {folder} (permission denied or read-only file system)")


def is_same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when `a` and `b` are one existing file (by any spelling, link or hard link)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_name_lengths(path: str | os.PathLike) -> Path:
    """`path` as a Path, or InputError when a name in it, or the whole, is longer than file systems allow (where
    every look at it, `exists()` included, would raise 'File name too long')."""
    out = Path(path)
    for name in out.parts:
        if (size := len(os.fsencode(name))) > NAME_MAX:
            raise InputError(f"{out}: the name {name[:20]}... is {size} bytes long, more than the {NAME_MAX} a file "
                             "or folder name may have")
    if (size := len(os.fsencode(out))) > PATH_MAX:
        raise InputError(f"{str(out)[:60]}...: the path is {size} bytes long, more than the "
                         f"{PATH_MAX} it may have")
    return out


def check_output_path(path: str | os.PathLike, inputs: Iterable[str | os.PathLike | None] = ()) -> Path:
    """Return `path` as a Path, or raise InputError when it cannot become an output file: it is a
    folder, one of the command's `inputs` (writing it would destroy that input), or its folder does
    not exist or cannot be written."""
    out = check_name_lengths(path)
    parent = out.parent
    if out.is_dir():
        raise InputError(f"{out}: is a folder, expected an output file name")
    if any(source is not None and is_same_file(out, source) for source in inputs):
        raise InputError(f"{out}: is also an input of this command; write the output to another file")
    if not parent.is_dir():
        what = "is not a folder" if parent.exists() else "does not exist (create it first)"
        raise InputError(f"{out}: output folder {parent} {what}")
    _check_writable_folder(parent, out)
    return out


def check_output_dir(path: str | os.PathLike, parents: bool = False) -> Path:
    """Return `path` as a Path, or raise InputError when it cannot become an output folder: it is a
    file, or the folder it is made in is missing (unless `parents`: then the nearest existing
    ancestor must be a folder) or cannot be written."""
    out = check_name_lengths(path)
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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by another user
        return True
    return True


def remove_stale_temps(out: Path) -> list[Path]:
    """Delete the temp files of `out` left by writers that were killed (SIGKILL, power loss), so they
    do not pile up beside the output; returns them. Temp names carry the writer's process id, so a
    temp file of a live writer is never touched."""
    removed = []
    for tmp in out.parent.glob(f".{glob.escape(out.name)}.*.tmp"):
        pid = tmp.name[len(out.name) + 2:].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            with contextlib.suppress(FileNotFoundError):
                if tmp.is_dir() and not tmp.is_symlink():  # a staged folder (`staged_folder`)
                    shutil.rmtree(tmp)
                else:
                    tmp.unlink()
                removed.append(tmp)
    return removed


def _temp_beside(out: Path) -> tuple[int, str]:
    """A new temp file for `out` in its folder (`.<name>.<pid>.<random>.tmp`), after removing stale ones."""
    try:
        remove_stale_temps(out)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.{os.getpid()}.", suffix=".tmp", dir=out.parent)
    except OSError as exc:
        raise output_error(out, exc) from None
    return fd, tmp


def _finish_temp(handle: IO) -> None:
    """Give the temp file the mode open() would (mkstemp makes 0600) and make its bytes durable."""
    os.fchmod(handle.fileno(), 0o666 & ~_current_umask())
    handle.flush()
    os.fsync(handle.fileno())


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temp file beside `path`; on clean exit fsync and rename it over `path`, else delete it.

    An OSError while writing (from the caller's writes too) becomes `output_error(path)`.
    """
    out = check_output_path(path)
    fd, tmp = _temp_beside(out)
    with _discard_on_failure([tmp], lambda: out):
        with os.fdopen(fd, mode) as handle:
            yield handle
            _finish_temp(handle)
        _place(tmp, out)


@contextlib.contextmanager
def _discard_on_failure(temps: list[str], writing: Callable[[], Path]) -> Iterator[None]:
    """Delete the temp files `temps` when the block fails; an OSError becomes `output_error` of the
    output being written (`writing()`)."""
    try:
        yield
    except BaseException as exc:
        for tmp in temps:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        if isinstance(exc, OSError):
            raise output_error(writing(), exc) from None
        raise


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data)


@contextlib.contextmanager
def staged_folder(path: str | os.PathLike) -> Iterator[Path]:
    """A new temp folder beside the folder `path` to write a whole tree into; on clean exit its entries
    are moved into `path` (made when missing; each replaces the entry of its name there), else it is
    deleted, so a failed or interrupted run leaves `path` as it was. An OSError becomes
    `output_error(path)`."""
    out = check_output_dir(path, parents=True)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(out)
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.{os.getpid()}.", suffix=".tmp", dir=out.parent))
    except OSError as exc:
        raise output_error(out, exc) from None
    try:
        yield stage
        if not out.exists():
            _place(stage, out)
            return
        for entry in sorted(stage.iterdir()):
            target = out / entry.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            os.replace(entry, target)
        stage.rmdir()
        _PLACED.append(out)
    except BaseException as exc:
        shutil.rmtree(stage, ignore_errors=True)
        if isinstance(exc, OSError):
            raise output_error(out, exc) from None
        raise


def write_files_together(files: dict[Path, bytes]) -> None:
    """Write several outputs as one: each goes to its temp file, and only when all are complete and
    durable are they renamed into place, so a failure (a full disk) leaves none of them new or changed."""
    outs = [check_output_path(path) for path in files]
    temps: list[str] = []
    writing: list[Path] = []
    with _discard_on_failure(temps, lambda: writing[-1]):
        for out, data in zip(outs, files.values()):
            writing.append(out)
            fd, tmp = _temp_beside(out)
            temps.append(tmp)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                _finish_temp(handle)
        for out, tmp in zip(outs, temps):
            writing.append(out)
            _place(tmp, out)
