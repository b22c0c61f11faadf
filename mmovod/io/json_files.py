"""JSON reading and writing: orjson for whole documents, clear InputErrors for bad files."""
from __future__ import annotations

import codecs
import mmap
import os
from pathlib import Path
from typing import Any

import orjson

from mmovod.io.atomic import atomic_open
from mmovod.io.errors import InputError


UTF8_CHUNK = 1 << 24


def _existing_file(path: str | os.PathLike, what: str) -> Path:
    """`path` as a Path, or InputError (naming it) when it is missing or a folder."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: {what} not found")
    if p.is_dir():
        raise InputError(f"{p}: expected a {what}, found a folder")
    return p


def read_bytes(path: str | os.PathLike, what: str = "file") -> bytes:
    """Read a whole file, raising InputError (naming the file) when it is missing or unreadable."""
    p = _existing_file(path, what)
    try:
        return p.read_bytes()
    except OSError as exc:
        raise InputError(f"{p}: cannot read ({exc.strerror})") from None


def read_text(path: str | os.PathLike, what: str = "text file") -> str:
    """A whole UTF-8 text file; InputError (naming the file and the first bad byte) when it is not UTF-8."""
    data = read_bytes(path, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: {what} is not UTF-8 text (byte {exc.start}: {data[exc.start]:#04x})") from None


def map_file(path: str | os.PathLike, what: str = "file") -> bytes | mmap.mmap:
    """The bytes of a JSON file as a read-only memory map (no copy into the heap; for the 1 GB LVIS
    files), checked to be UTF-8 (`check_utf8`).

    Decoders read it like `bytes`; msgspec.Raw values decoded from it keep the map alive.
    """
    p = _existing_file(path, what)
    try:
        with open(p, "rb") as handle:
            if os.fstat(handle.fileno()).st_size == 0:
                return b""
            data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as exc:
        raise InputError(f"{p}: cannot read ({exc.strerror})") from None
    check_utf8(data, p)
    return data


def check_utf8(data: bytes | mmap.mmap, path: str | os.PathLike) -> None:
    """InputError naming `path` and the offset of the first byte that is not UTF-8.

    JSON text is UTF-8, but partial decoders (msgspec with `Raw`) only check the strings they decode,
    so a bad byte elsewhere would pass through to an output. ASCII chunks (most of an LVIS file) are
    skipped at memory speed; the rest is decoded and thrown away, chunk by chunk.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    for start in range(0, len(data), UTF8_CHUNK):
        chunk = data[start:start + UTF8_CHUNK]
        if chunk.isascii() and not decoder.getstate()[0]:
            continue
        try:
            decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}: not valid JSON (not UTF-8 text: byte {start + exc.start})") from None
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise InputError(f"{path}: not valid JSON (not UTF-8 text: it ends inside a character)") from None


def describe_json_error(path: str | os.PathLike, exc: Exception) -> InputError:
    """Turn a decoder exception (a RecursionError too: a document nested too deeply for the decoder)
    into a one-line InputError naming the file."""
    if isinstance(exc, RecursionError):
        return InputError(f"{path}: not valid JSON (nested too deeply)")
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return InputError(f"{path}: not valid JSON ({msg})")


def load_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    data = read_bytes(path, what)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise describe_json_error(path, exc) from None


def dumps_json(obj: Any, indent: bool = False) -> bytes:
    option = orjson.OPT_SERIALIZE_NUMPY | (orjson.OPT_INDENT_2 if indent else 0)
    return orjson.dumps(obj, option=option)


def save_json(path: str | os.PathLike, obj: Any, indent: bool = False) -> None:
    """Serialise `obj` and write it atomically (the file appears complete or not at all)."""
    payload = dumps_json(obj, indent)
    with atomic_open(path, "wb") as handle:
        handle.write(payload)
