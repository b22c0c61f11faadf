"""Class-list files: one class name a line, blank lines and `#` comments ignored (the one reader every tool uses)."""
from __future__ import annotations

import os

from mmovod.io.errors import InputError
from mmovod.io.json_files import read_text


def read_class_list(path: str | os.PathLike) -> list[str]:
    """The names of a class-list file in file order, duplicates dropped; InputError (naming the file)
    when it is missing, not UTF-8 text, or lists no class."""
    text = read_text(path, "class list").removeprefix("\ufeff")
    names = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    names = list(dict.fromkeys(n for n in names if n))
    if not names:
        raise InputError(f"{path}: class list is empty")
    return names
