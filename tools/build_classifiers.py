"""Same as `mmovod build_classifiers`; the code is in mmovod/cli/commands/build_classifiers.py."""
import sys

from mmovod.cli.commands.build_classifiers import get_parser, main

__all__ = ["get_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
