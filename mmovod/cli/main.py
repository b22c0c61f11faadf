"""The `mmovod` command: `mmovod <command> [args]` runs `python tools/<command>.py [args]`, the same code."""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from mmovod import __version__
from mmovod.cli.commands import ALIASES, COMMANDS, GUIDE_STEPS, MORE_TOOLS
from mmovod.cli.program import run_program
from mmovod.cli.tool_runner import EXIT_BAD_INPUT


def _listing(title: str, commands: dict[str, str]) -> str:
    width = max(map(len, COMMANDS))
    return "\n".join([title, *(f"  {name:<{width}}  {summary}" for name, summary in commands.items())])


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmovod", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Data preparation and multi-modal CLIP classifiers for open-vocabulary detection (MM-OVOD).",
        epilog="\n\n".join([_listing("the datasets guide's steps, in its order:", GUIDE_STEPS),
                            _listing("beyond the guide:", MORE_TOOLS),
                            "`mmovod COMMAND --help` describes a command."]))
    parser.add_argument("--version", action="version", version=f"mmovod {__version__}")
    parser.add_argument("command", choices=[*COMMANDS, *ALIASES], metavar="COMMAND",
                        help="the step or tool to run (listed below)")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="its arguments")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `mmovod COMMAND ARGS...`; returns the command's exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = get_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    command = importlib.import_module(f"mmovod.cli.commands.{ALIASES.get(args.command, args.command)}")
    return command.main(args.args, prog=f"mmovod {args.command}")


def program() -> int:
    """The `mmovod` console command: `main()` run as the process's program (Ctrl-C: one line, exit 130)."""
    return run_program("mmovod.cli.main:main", "mmovod")
