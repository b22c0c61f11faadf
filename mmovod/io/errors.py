"""The exception types tools turn into one clean line: bad input (exit 2) and an interruption that kept work (exit 130)."""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

RUN_AGAIN = "run the same command again to resume from there"


class InputError(Exception):
    """Bad user input (file, flag or data). Tools print the message as one line and exit with code 2."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C after some finished work was kept (cache shards, checkpoints); the message says what is
    kept (`kept`) and how to resume (`resume`). A plain KeyboardInterrupt means nothing was written."""

    def __init__(self, kept: str, resume: str = RUN_AGAIN):
        super().__init__(f"{kept}; {resume}")
        self.kept = kept
        self.resume = resume


@contextmanager
def interruption_keeps(kept: Callable[[], str | tuple[str, str] | None], resume: str = RUN_AGAIN) -> Iterator[None]:
    """Turn Ctrl-C inside the block into `Interrupted(what is kept, resume)`.

    `kept()` is asked after the interruption and says what of the work is on disk now ("3 finished
    shards of 8 are kept in DIR"), or (what is kept, how to resume) when the advice depends on it, or
    None when nothing is kept: the KeyboardInterrupt then goes on as it is (the tools say that no
    output was written). An `Interrupted` from deeper inside keeps its own resume advice, with what
    this block keeps put in front of what it kept (unless it already says so).
    """
    try:
        yield
    except Interrupted as inner:
        outer = kept()
        outer = outer[0] if isinstance(outer, tuple) else outer
        if outer is None or outer in inner.kept:
            raise
        raise Interrupted(f"{outer}; {inner.kept}", inner.resume) from None
    except KeyboardInterrupt:
        what = kept()
        if what is None:
            raise
        raise (Interrupted(*what) if isinstance(what, tuple) else Interrupted(what, resume)) from None


@contextmanager
def interrupt_held() -> Iterator[None]:
    """Hold a Ctrl-C that lands inside the block and raise it as KeyboardInterrupt when the block ends:
    for a step that an interruption would leave half-made (a DataLoader starting its workers, whose
    half-built iterator prints a traceback when collected). Only in the main thread, and only while
    Python's own handler is in place (elsewhere the block runs as it is)."""
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    held: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if held:
        raise KeyboardInterrupt
