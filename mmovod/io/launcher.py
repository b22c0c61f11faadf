"""How the user started mmovod, so that messages and help name other commands the way they can type them.

Two spellings: `mmovod <command> ...` (the installed command; also the default for a Python API
user, who has it too) and `python tools/<command>.py ...` (a script of a repository checkout). The
tools' run wrapper sets the spelling for the duration of a command (`launched_as`); every hint in
the library spells a command through `command`, and help texts written for a checkout are respelled
with `spell_commands`.
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Collection, Iterator

MMOVOD = "mmovod"
CHECKOUT = "checkout"
LAUNCHERS = (MMOVOD, CHECKOUT)

_launcher: ContextVar[str] = ContextVar("mmovod_launcher", default=MMOVOD)


def command(step: str, args: str = "") -> str:
    """The command line of `step` with `args`, as this user types it: `mmovod step args` or `python tools/step.py args`."""
    head = f"mmovod {step}" if _launcher.get() == MMOVOD else f"python tools/{step}.py"
    return f"{head} {args}".rstrip()


@contextmanager
def launched_as(launcher: str) -> Iterator[None]:
    """Within: `command` spells commands for `launcher` (`MMOVOD` or `CHECKOUT`)."""
    if launcher not in LAUNCHERS:
        raise ValueError(f"launcher must be one of {LAUNCHERS}, not {launcher!r}")
    token = _launcher.set(launcher)
    try:
        yield
    finally:
        _launcher.reset(token)


def spell_commands(text: str, steps: Collection[str]) -> str:
    """`text` with each `python tools/<step>.py`, `tools/<step>.py` or `<step>.py` of a known step spelled by `command`."""
    if not steps or _launcher.get() == CHECKOUT:
        return text
    names = "|".join(sorted(map(re.escape, steps), key=len, reverse=True))
    pattern = re.compile(rf"(?:python\s+)?(?<![\w/.-])(?:tools/)?({names})\.py\b")
    return pattern.sub(lambda m: command(m.group(1)), text)
