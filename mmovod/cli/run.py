"""What every tool shares: the run wrapper (one-line errors, exit codes), logging, common flag groups."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Callable, Sequence

from mmovod.io.errors import InputError

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
TRUST_CHECKPOINT_HELP = ("trust the checkpoint file: unpickle every type it holds, which can run code from the "
                         "file (by default only tensors, plain values, numpy scalars and argparse.Namespace are read)")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Keeps the docstring layout of the description and appends defaults to every flag's help."""


def make_parser(doc: str | None) -> argparse.ArgumentParser:
    """A parser whose description is the tool's module docstring (with its example command)."""
    return argparse.ArgumentParser(description=doc, formatter_class=HelpFormatter)


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse `type` for integers >= `minimum` (a smaller value is a usage error, before any work)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, found {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, found {value}")
        return value
    return parse


def setup_logging(verbose: bool = False) -> None:
    """mmovod's own messages at INFO (DEBUG with verbose); third-party libraries only from WARNING."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr, force=True)
    logging.getLogger("mmovod").setLevel(logging.DEBUG if verbose else logging.INFO)


def tool_file_name(body: Callable, default: str) -> str:
    """`x.py` for a function defined in tools/x.py (run as a script or imported), else `default`."""
    path = getattr(sys.modules.get(getattr(body, "__module__", "")), "__file__", None)
    return Path(path).name if path else default


def run_tool(
    parser: argparse.ArgumentParser,
    body: Callable[[argparse.Namespace], int | None],
    argv: Sequence[str] | None = None,
) -> int:
    """Parse `argv`, run `body(args)`, map InputError to one stderr line and exit code 2.

    Messages start with the tool's file name (`body`'s module), also when `main` is called in-process.
    """
    parser.prog = tool_file_name(body, parser.prog)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, one `prog: error:` line): returned, not raised
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    setup_logging(getattr(args, "verbose", False))
    try:
        code = body(args)
    except InputError as exc:
        sys.stderr.write(f"{parser.prog}: error: {exc}\n")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        sys.stderr.write(f"{parser.prog}: interrupted; no output was written\n")
        return EXIT_INTERRUPTED
    return EXIT_OK if code is None else code
