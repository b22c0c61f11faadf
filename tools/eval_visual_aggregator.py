"""Same as `mmovod eval_visual_aggregator`; the code is in mmovod/cli/commands/eval_visual_aggregator.py."""
import sys

from mmovod.cli.program import run_program

if __name__ == "__main__":  # the tool's modules load inside run_program, so a Ctrl-C then is one line too
    sys.exit(run_program("mmovod.cli.commands.eval_visual_aggregator:main", "eval_visual_aggregator.py"))

from mmovod.cli.commands.eval_visual_aggregator import get_parser, main  # noqa: E402  (for callers in Python: tests call main(argv))

__all__ = ["get_parser", "main"]
