"""What every tool shares: the run wrapper (one-line errors, exit codes), logging, common flag groups."""
from __future__ import annotations

import argparse
import logging
import sys
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


def setup_logging(verbose: bool = False) -> None:
    """mmovod's own messages at INFO (DEBUG with verbose); third-party libraries only from WARNING."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr, force=True)
    logging.getLogger("mmovod").setLevel(logging.DEBUG if verbose else logging.INFO)


def run_tool(
    parser: argparse.ArgumentParser,
    body: Callable[[argparse.Namespace], int | None],
    argv: Sequence[str] | None = None,
) -> int:
    """Parse `argv`, run `body(args)`, map InputError to one stderr line and exit code 2."""
    args = parser.parse_args(argv)
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
