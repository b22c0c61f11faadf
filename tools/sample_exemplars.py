"""Same as `mmovod sample_exemplars`; the code is in mmovod/cli/commands/sample_exemplars.py."""
import sys

from mmovod.cli.program import run_program

if __name__ == "__main__":  # the tool's modules load inside run_program, so a Ctrl-C then is one line too
    sys.exit(run_program("mmovod.cli.commands.sample_exemplars:main", "sample_exemplars.py"))

from mmovod.cli.commands.sample_exemplars import get_parser, main  # noqa: E402  (for callers in Python: tests call main(argv))

__all__ = ["get_parser", "main"]
