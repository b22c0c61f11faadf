"""Class-list files: one class name a line, blank lines and `#` comments ignored (the one reader every tool uses)."""
from __future__ import annotations

import os

from mmovod.io.errors import InputError
from mmovod.io.json_files import read_bytes


def read_class_list(path: str | os.PathLike) -> list[str]:
    """The names of a class-list file in file order, duplicates dropped; InputError (naming the file)
    when it is missing, not UTF-8 text, or lists no class."""
    data = read_bytes(path, "class list")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: class list is not UTF-8 text (byte {exc.start})") from None
    names = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    names = list(dict.fromkeys(n for n in names if n))
    if not names:
        raise InputError(f"{path}: class list is empty")
    return names
