"""Same as `mmovod eval_classifiers`; the code is in mmovod/cli/commands/eval_classifiers.py."""
import sys

from mmovod.cli.commands.eval_classifiers import get_parser, main

__all__ = ["get_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
