"""Resumable HTTP downloads into a `.part` file (standard library only).

`fetch(url, part)` appends to `part` with an HTTP Range request when it already holds bytes, so an
interrupted download continues where it stopped (in the same run after a dropped connection, up to
`retries` times, or in a later run). It refuses HTML pages (an error or login page served with
status 200 is not the file) and HTTP errors, and raises DownloadError with one line. The caller
checks the finished `.part` and renames it into place; nothing here touches the final path.
"""
from __future__ import annotations

import contextlib
import http.client
import logging
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from mmovod.io.atomic import output_error
from mmovod.io.errors import InputError

log = logging.getLogger(__name__)

CHUNK = 1 << 16
USER_AGENT = "mmovod-download-assets"
# statuses worth another try: the server may answer next time
TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}


class DownloadError(InputError):
    """A download that failed for good (HTTP error, HTML page, dropped connection after the retries)."""


class Progress(Protocol):
    """What `fetch` reports bytes to (a tqdm bar fits)."""

    def update(self, n: int) -> object: ...

    def close(self) -> None: ...


# (label, total bytes or None, bytes already there) -> a progress sink
ProgressFactory = Callable[[str, "int | None", int], Progress]


@dataclass(frozen=True)
class RetryPolicy:
    """`retries` further attempts after a dropped connection or a transient HTTP status, waiting
    `wait * 2**i` seconds before the i-th; `timeout` seconds per socket operation."""

    retries: int = 3
    wait: float = 1.0
    timeout: float = 60.0


class _Transient(Exception):
    """One attempt failed in a way another attempt may fix (the .part keeps what arrived)."""


def fetch(url: str, part: str | os.PathLike, policy: RetryPolicy = RetryPolicy(),
          progress: ProgressFactory | None = None) -> int:
    """Download `url` into `part`, resuming from its current size; return the file's size in bytes.

    Raises DownloadError naming the URL when the server answers with an HTTP error, an HTML page or
    a body of the wrong length after all retries; a partial `part` is kept for a later resume.
    """
    part = Path(part)
    attempt = 0
    while True:
        try:
            return _fetch_once(url, part, policy.timeout, progress)
        except _Transient as exc:
            have = part.stat().st_size if part.exists() else 0
            if attempt >= policy.retries:
                kept = f"; {have} bytes kept in {part}, run again to resume" if have else ""
                tries = f" after {attempt + 1} attempts" if attempt else ""
                raise DownloadError(f"{url}: {exc}{tries}{kept}") from None
            delay = policy.wait * 2 ** attempt
            attempt += 1
            log.warning("%s: %s; retrying from byte %d in %.0f s (%d/%d)", url, exc, have, delay, attempt,
                        policy.retries)
            time.sleep(delay)


def _fetch_once(url: str, part: Path, timeout: float, progress: ProgressFactory | None) -> int:
    start = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
    if start:
        request.add_header("Range", f"bytes={start}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        with exc:
            if exc.code == 416 and start:
                return _range_not_satisfiable(url, part, start, exc.headers.get("Content-Range"))
            if exc.code in TRANSIENT_STATUS:
                raise _Transient(f"HTTP {exc.code} {exc.reason}") from None
            raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = " ".join(str(getattr(exc, "reason", exc)).split())  # one line, also for multi-line server texts
        raise _Transient(f"cannot connect ({reason})") from None
    with response:
        _refuse_html(url, response.headers.get("Content-Type", ""))
        if response.status == 206:
            offset, total = _content_range(url, response.headers.get("Content-Range"), start)
        else:  # 200: the whole file (the server ignored the Range header), so start over
            offset, total = 0, _int_or_none(response.headers.get("Content-Length"))
        return _copy_body(url, response, part, offset, total, progress)


def _copy_body(url: str, response: http.client.HTTPResponse, part: Path, offset: int, total: int | None,
               progress: ProgressFactory | None) -> int:
    """Write the body to `part` from `offset` on; raise _Transient when it stops short of `total`."""
    bar = progress(Path(urllib.parse.urlparse(url).path).name, total, offset) if progress else None
    size = offset
    try:
        with open(part, "r+b" if offset else "wb") as out:
            out.seek(offset)
            out.truncate()
            first = True
            while True:
                try:
                    chunk = response.read(CHUNK)
                except (OSError, http.client.HTTPException) as exc:
                    raise _Transient(f"connection dropped after {size} bytes ({type(exc).__name__})") from None
                if not chunk:
                    break
                if first and offset == 0 and chunk.lstrip()[:1] == b"<":
                    raise DownloadError(f"{url}: the server sent an HTML/XML page, not the file "
                                        "(an error or login page?)")
                first = False
                out.write(chunk)
                size += len(chunk)
                if bar:
                    bar.update(len(chunk))
    except DownloadError:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
        raise
    except OSError as exc:
        raise DownloadError(str(output_error(part, exc))) from None
    finally:
        if bar:
            bar.close()
    if total is not None and size < total:
        raise _Transient(f"connection dropped after {size} of {total} bytes")
    if total is not None and size > total:
        raise DownloadError(f"{url}: the server sent {size} bytes, more than the {total} it announced")
    return size


def _refuse_html(url: str, content_type: str) -> None:
    if content_type.split(";")[0].strip().lower() in ("text/html", "application/xhtml+xml"):
        raise DownloadError(f"{url}: the server sent an HTML page ({content_type}), not the file "
                            "(an error or login page?)")


_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def _content_range(url: str, header: str | None, start: int) -> tuple[int, int | None]:
    """(offset, total size) of a 206 answer; the offset must be where the .part ends."""
    match = _CONTENT_RANGE.fullmatch((header or "").strip())
    if not match or int(match.group(1)) != start:
        raise DownloadError(f"{url}: the server answered the resume request from byte {start} with "
                            f"Content-Range {header!r}; delete the .part file to start over")
    total = match.group(3)
    return start, None if total == "*" else int(total)


def _range_not_satisfiable(url: str, part: Path, start: int, header: str | None) -> int:
    """416 on resume: the .part already holds the whole file when its size is the announced total."""
    match = re.fullmatch(r"bytes\s+\*/(\d+)", (header or "").strip())
    if match and int(match.group(1)) == start:
        return start
    part.unlink()
    raise _Transient(f"the partial file did not fit the server's file ({header or 'no size given'}); restarting")


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value and value.strip().isdigit() else None
