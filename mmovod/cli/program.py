"""A tool run as this process's program (a `tools/` script, `mmovod`, `python -m mmovod`): Ctrl-C at any moment ends in
one line and exit code 130, never a traceback or a kill by SIGINT.

Kept free of mmovod imports until the run starts, so a Ctrl-C while the tool's modules load is caught too. In-process
callers of a tool's `main()` (tests, notebooks) do not come through here, and their signal handling is left alone.
"""
from __future__ import annotations

import importlib
import os
import signal
import sys

EXIT_INTERRUPTED = 130
EXIT_BAD_INPUT = 2
STDOUT_CLOSED = "standard output was closed before all was printed (broken pipe); the printed text is cut short"
_as_program = False


def settle() -> None:
    """The tool's outcome is decided (its exit code and last line): in a program, Ctrl-C is ignored from now on.

    Python restores the default SIGINT action while it shuts down, so a Ctrl-C landing then (while DataLoader
    workers, thread pools and atexit handlers are torn down, which takes a moment after torch) would kill the
    process (exit -2) or print a traceback in place of the exit code already chosen. An ignored SIGINT stays ignored.
    """
    if _as_program:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_program(target: str, prog: str) -> int:
    """Import `target` ("module:function", a tool's or mmovod's `main`), call it with no arguments (it reads
    sys.argv) and return its exit code, as this process's program; `prog` names the tool in the line said when
    a Ctrl-C lands before its run wrapper took over (while its modules load)."""
    global _as_program
    _as_program = True
    try:
        os.getcwd()
    except FileNotFoundError:  # else torch's libraries fail to load (a oneMKL FATAL ERROR, no exit code of ours)
        sys.stderr.write(f"{prog}: error: the current folder was deleted; run this from an existing folder\n")
        return EXIT_BAD_INPUT
    try:
        module, function = target.split(":")
        code = getattr(importlib.import_module(module), function)()
    except KeyboardInterrupt:  # before the run wrapper's own handling: nothing ran yet
        sys.stderr.write(f"{prog}: interrupted; no output was written\n")
        code = EXIT_INTERRUPTED
    except BrokenPipeError:  # outside the run wrapper: `--help | head -1`
        sys.stderr.write(f"{prog}: error: {STDOUT_CLOSED}\n")
        code = EXIT_BAD_INPUT
    settle()
    return _flush_stdout(code, prog)


def _flush_stdout(code: int, prog: str) -> int:
    """Print what stdout still buffers; when its reader has gone (a broken pipe) say so (unless the run failed
    already, saying why) and point stdout at /dev/null, so Python's own flush at exit adds no traceback."""
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        if code == 0:
            sys.stderr.write(f"{prog}: error: {STDOUT_CLOSED}\n")
            code = EXIT_BAD_INPUT
    return code
