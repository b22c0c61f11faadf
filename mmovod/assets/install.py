"""Fetch an asset, check it, and only then put it in place.

The download goes to `<name>.part` beside the destination (kept when the connection drops, so the
next attempt resumes it), is unpacked when it is a tar archive holding the file, is renamed to
`.<stem>.unverified<suffix>`, checked, and renamed over the destination. A file that fails its check
is deleted with its `.part`; the destination is never touched before the check passes.
"""
from __future__ import annotations

import contextlib
import logging
import os
import tarfile
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Callable, Literal

from mmovod.assets.checks import check_asset_file
from mmovod.assets.manifest import Asset
from mmovod.io.atomic import disk_full_reason, output_error
from mmovod.io.downloads import CHUNK, DownloadError, ProgressFactory, RetryPolicy, fetch
from mmovod.io.errors import InputError, interruption_keeps

log = logging.getLogger(__name__)

Status = Literal["fetched", "present"]


@dataclass(frozen=True)
class FetchOptions:
    """Where assets go (`dest` root), where they come from (`base_url` mirror or upstream), retries."""

    dest: Path
    base_url: str | None = None
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    force: bool = False


def mirror_url(base_url: str, relative: str) -> str:
    """The URL of `relative` (a POSIX path) on a mirror that keeps the files' relative names."""
    return base_url.rstrip("/") + "/" + urllib.parse.quote(relative)


def asset_url(asset: Asset, base_url: str | None) -> str:
    return mirror_url(base_url, asset.path) if base_url else asset.url


def asset_target(asset: Asset, dest: Path) -> Path:
    return dest.joinpath(*PurePosixPath(asset.path).parts)


def check_writable(target: Path) -> None:
    """Raise InputError unless `target` can be created: not a folder, nearest existing folder writable."""
    if target.is_dir():
        raise InputError(f"{target}: is a folder, expected a file path")
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(f"{target}: cannot be created, {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"{target}: cannot be created, {folder} is not writable")


def install_asset(asset: Asset, options: FetchOptions, progress: ProgressFactory | None = None) -> Status:
    """Make `dest/asset.path` hold the checked asset; 'present' when a file that passes is already there."""
    target = asset_target(asset, options.dest)
    if target.is_file() and not options.force:
        check_present(target, lambda path: check_asset_file(path, asset))
        return "present"
    url = asset_url(asset, options.base_url)
    fetch_checked(url, target, lambda path: check_asset_file(path, asset, label=url), options.policy, progress,
                  unpack=asset.unpack, size=asset.size)
    return "fetched"


def check_present(target: Path, check: Callable[[Path], None]) -> None:
    """Check a file that is already in place; a failure says how to replace it."""
    try:
        check(target)
    except InputError as exc:
        raise InputError(f"{exc} (already there: remove it or pass --force to fetch it again)") from None


def fetch_checked(url: str, target: Path, check: Callable[[Path], None], policy: RetryPolicy,
                  progress: ProgressFactory | None = None, unpack: str | None = None, size: int | None = None) -> None:
    """Download `url`, unpack it when it is a tar archive and `unpack` is 'tar', `check` it, rename to `target`.

    The unpacked file may not exceed `size` bytes (the manifest's; unset: the archive's own size). A `.part` left
    by an earlier run is resumed; when the file it makes fails its check, it is downloaded again from the start."""
    part = target.parent / (Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name + ".part")
    stem, suffix = os.path.splitext(target.name)
    candidate = target.parent / f".{stem}.unverified{suffix}"
    for leftover in (part, candidate):  # written through, a link or folder of that name would lead elsewhere
        if leftover.is_symlink() or (leftover.exists() and not leftover.is_file()):
            raise InputError(f"{leftover}: not a file an earlier download left (a link or folder); remove it")
    resumed = part.is_file() and part.stat().st_size > 0
    try:
        _fetch_and_place(url, target, part, candidate, check, policy, progress, unpack, size)
    except InputError as exc:
        if not resumed or part.exists():  # a fresh download, or one kept to be resumed
            raise
        log.warning("%s (resumed from %s, of an earlier version?); downloading it again from the start", exc, part)
        _fetch_and_place(url, target, part, candidate, check, policy, progress, unpack, size)


def _fetch_and_place(url: str, target: Path, part: Path, candidate: Path, check: Callable[[Path], None],
                     policy: RetryPolicy, progress: ProgressFactory | None, unpack: str | None, size: int | None) -> None:
    """Download into `part` (resuming it), unpack or rename it to `candidate`, check it, rename it to `target`;
    on failure delete the candidate, the part when it arrived whole or empty, and the folders made for it."""
    created = _make_folders(target.parent)
    fetched = False
    try:
        with interruption_keeps(lambda: part_kept(url, part), "run the same command again to resume the download"):
            fetch(url, part, policy, progress)
        fetched = True
        if unpack == "tar" and tarfile.is_tarfile(part):
            _extract_member(part, target.name, candidate, url, size)
            part.unlink()
        else:
            os.replace(part, candidate)
        check(candidate)
        os.replace(candidate, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            candidate.unlink()
        if fetched or _is_empty(part):  # the whole file arrived and is wrong, or nothing did: nothing to resume
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
        for folder in reversed(created):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty: a .part kept for resuming keeps its folder
        raise


def _is_empty(path: Path) -> bool:
    return path.is_file() and path.stat().st_size == 0


def part_kept(url: str, part: Path) -> str | None:
    """What an interrupted download keeps: the bytes in its `.part` file (None: none arrived)."""
    size = part.stat().st_size if part.is_file() else 0
    return f"{size} bytes of {url} are kept in {part}" if size else None


def _make_folders(folder: Path) -> list[Path]:
    """Create `folder` and its missing parents; return the folders created, outermost first."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    created = []
    for path in reversed(missing):
        try:
            path.mkdir()
        except OSError as exc:
            raise DownloadError(str(output_error(path, exc, "cannot create folder"))) from None
        created.append(path)
    return created


def _extract_member(archive_path: Path, name: str, out: Path, url: str, size: int | None = None) -> None:
    """Copy the archive's regular file called `name` (in any folder of the archive) to `out`, refusing
    it before unpacking when its header claims more than `size` bytes (unset: the archive's size), and
    stopping the copy there when the data runs longer than its header said."""
    limit = size if size is not None else archive_path.stat().st_size
    try:
        with tarfile.open(archive_path) as archive:
            files = [m for m in archive.getmembers() if m.isfile()]
            chosen = [m for m in files if PurePosixPath(m.name).name == name]
            if len(chosen) != 1:
                listed = ", ".join(m.name for m in files[:5]) or "no files"
                raise InputError(f"{url}: expected one {name} in the archive, found {listed}")
            if chosen[0].size > limit:
                raise InputError(f"{url}: {chosen[0].name} in the archive is {chosen[0].size} bytes, more than the "
                                 f"{limit} expected; not unpacked")
            with archive.extractfile(chosen[0]) as source, open(out, "wb") as sink:
                _copy_capped(source, sink, limit, f"{url}: {chosen[0].name} in the archive")
    except (tarfile.TarError, OSError, EOFError) as exc:
        if disk_full_reason(exc):
            raise output_error(out, exc) from None
        raise InputError(f"{url}: cannot unpack the tar archive ({exc})") from None


def _copy_capped(source: IO[bytes], sink: IO[bytes], limit: int, what: str) -> None:
    copied = 0
    while chunk := source.read(CHUNK):
        copied += len(chunk)
        if copied > limit:
            raise InputError(f"{what} holds more than the {limit} bytes expected; not unpacked")
        sink.write(chunk)
