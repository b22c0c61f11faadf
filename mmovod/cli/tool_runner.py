"""The run wrapper every tool goes through: one-line errors with exit code 2, Ctrl-C as 130, logging set-up."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

from mmovod.cli.commands import COMMANDS
from mmovod.cli.flags import command_line
from mmovod.cli.program import EXIT_BAD_INPUT, EXIT_INTERRUPTED, STDOUT_CLOSED, settle
from mmovod.io.atomic import disk_full_reason, output_error, placed_outputs
from mmovod.io.errors import InputError, Interrupted
from mmovod.io.launcher import CHECKOUT, MMOVOD, launched_as, spell_commands
from mmovod.readers.exemplar_records import BadImageError

log = logging.getLogger(__name__)

EXIT_OK = 0
SKIP_BAD_HINT = "pass --skip-bad to skip unreadable images"


def one_line(message: str) -> str:
    """`message` on one line: line breaks (from an OS, a server or a library) become spaces."""
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())


def setup_logging(verbose: bool = False) -> None:
    """mmovod's own messages at INFO (DEBUG with verbose); third-party libraries only from WARNING."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr, force=True)
    logging.getLogger("mmovod").setLevel(logging.DEBUG if verbose else logging.INFO)


def tool_file_name(body: Callable, default: str) -> str:
    """`x.py` for a function defined in mmovod/cli/commands/x.py (the code of tools/x.py), else `default`."""
    path = getattr(sys.modules.get(getattr(body, "__module__", "")), "__file__", None)
    return Path(path).name if path else default


def respell_help(parser: argparse.ArgumentParser) -> None:
    """Spell the commands named in the description and the flags' help as `mmovod <command>`."""
    parser.description = spell_commands(parser.description or "", COMMANDS)
    for action in parser._actions:
        if action.help:
            action.help = spell_commands(action.help, COMMANDS)


def interrupted_after(placed: list[Path]) -> str:
    """What a Ctrl-C that no step of the tool accounted for kept: the outputs it had put in place, complete (and
    not removed since, as a cache emptied on the way out)."""
    placed = [path for path in dict.fromkeys(placed) if path.exists()]
    if not placed:
        return "no output was written"
    names = ", ".join(str(path) for path in placed[:3]) + (f" and {len(placed) - 3} more" if len(placed) > 3 else "")
    return f"{names} {'was' if len(placed) == 1 else 'were'} written in full before it and kept"


def _is_text(arg: str) -> bool:
    """False for an argument holding bytes the file-system encoding could not decode (Python keeps them as surrogates)."""
    try:
        arg.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def close_progress_bars() -> None:
    """Close the progress bars a stopped step left open, so that the tool's last line comes after them: a bar
    updated by hand (not iterated, which closes itself) is otherwise drawn again when it is collected, after
    that line, and the line would start on the bar's. A bar stopped inside its constructor, after drawing
    itself, is finished first: tqdm's close() skips (or fails on) a bar it never finished making, leaving its
    line open. Only when tqdm is loaded."""
    tqdm = sys.modules.get("tqdm")
    if tqdm is None:
        return
    for bar in list(getattr(tqdm.tqdm, "_instances", ())):  # tqdm's registry of open bars
        try:
            if getattr(bar, "sp", None) is not None and not hasattr(bar, "start_t"):  # stopped in its constructor
                bar.last_print_t = bar.start_t = bar._time()  # the constructor's last step, which close() needs
            bar.close()
        except Exception:  # tidying the display must never turn the tool's one line into a traceback
            log.debug("could not close a progress bar", exc_info=True)


def say(prog: str, message: str) -> None:
    """Write the tool's last line, `prog: message`, to stderr, after closing the open progress bars."""
    close_progress_bars()
    sys.stderr.write(f"{prog}: {message}\n")


def bad_image_message(exc: BadImageError, parser: argparse.ArgumentParser) -> str:
    """The one line for an unreadable photo: the library's message, plus the flag that skips it where the tool has one."""
    has_flag = any("--skip-bad" in action.option_strings for action in parser._actions)
    return f"{exc} ({SKIP_BAD_HINT})" if has_flag else str(exc)


def run_tool(
    parser: argparse.ArgumentParser,
    body: Callable[[argparse.Namespace], int | None],
    argv: Sequence[str] | None = None,
    prog: str | None = None,
) -> int:
    """Parse `argv`, run `body(args)`, map InputError (and a full disk that no writer of mmovod met) to
    one stderr line (line breaks in its message become spaces) and exit code 2, Ctrl-C to one line
    (saying what an `Interrupted` kept, or which outputs were complete) and 130.

    Messages start with `prog` (default: the file name of `body`'s module, `x.py`), also when `main` is called
    in-process; `args.command_line` holds the command as typed, for the sidecars of the outputs. With a
    `prog` (`mmovod x`) the help and every hint spell commands as `mmovod <command>`, else as
    `python tools/<command>.py`. A BadImageError gains the hint of the tool's --skip-bad flag.
    """
    with launched_as(CHECKOUT if prog is None else MMOVOD):
        return _run(parser, body, argv, prog)


def _run(parser: argparse.ArgumentParser, body: Callable[[argparse.Namespace], int | None],
         argv: Sequence[str] | None, prog: str | None) -> int:
    if prog is None:
        parser.prog = tool_file_name(body, parser.prog)
    else:  # e.g. `mmovod x`: the examples of the help text are then spelled that way too
        parser.prog = prog
        respell_help(parser)
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, one `prog: error:` line): returned, not raised
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    undecodable = next((arg for arg in argv if not _is_text(arg)), None)
    if undecodable is not None:  # the sidecars record the command line and paths as JSON text, which must be UTF-8
        shown = os.fsencode(undecodable).decode("utf-8", "backslashreplace")
        say(parser.prog, f"error: {shown}: not UTF-8 (a name in another encoding?); rename it")
        return EXIT_BAD_INPUT
    args.command_line = command_line(parser.prog, argv)
    setup_logging(getattr(args, "verbose", False))
    placed = len(placed_outputs())
    try:
        try:
            code = body(args)
        finally:  # a tool run as a program ignores Ctrl-C once its outcome is known
            settle()
    except BadImageError as exc:
        say(parser.prog, f"error: {one_line(bad_image_message(exc, parser))}")
        return EXIT_BAD_INPUT
    except InputError as exc:  # hints written as `tools/x.py` deeper down are spelled as this user types them
        say(parser.prog, f"error: {one_line(spell_commands(str(exc), COMMANDS))}")
        return EXIT_BAD_INPUT
    except Interrupted as exc:
        say(parser.prog, f"interrupted; {one_line(str(exc))}")
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        say(parser.prog, f"interrupted; {interrupted_after(placed_outputs(placed))}")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `tool | head -1`: the reader left; what was to be printed is cut short
        say(parser.prog, f"error: {STDOUT_CLOSED}")
        return EXIT_BAD_INPUT
    except OSError as exc:  # a full disk met outside mmovod's writers (a library's cache or temp file)
        reason = disk_full_reason(exc)
        if reason is None:
            raise
        message = str(output_error(exc.filename, exc)) if exc.filename else f"cannot write ({reason})"
        say(parser.prog, f"error: {one_line(message)}")
        return EXIT_BAD_INPUT
    return EXIT_OK if code is None else code
