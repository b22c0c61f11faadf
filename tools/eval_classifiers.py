"""Same as `mmovod eval_classifiers`; the code is in mmovod/cli/commands/eval_classifiers.py."""
import sys

from mmovod.cli.program import run_program

if __name__ == "__main__":  # the tool's modules load inside run_program, so a Ctrl-C then is one line too
    sys.exit(run_program("mmovod.cli.commands.eval_classifiers:main", "eval_classifiers.py"))

from mmovod.cli.commands.eval_classifiers import get_parser, main  # noqa: E402  (for callers in Python: tests call main(argv))

__all__ = ["get_parser", "main"]
