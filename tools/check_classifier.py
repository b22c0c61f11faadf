"""Same as `mmovod check_classifier`; the code is in mmovod/cli/commands/check_classifier.py."""
import sys

from mmovod.cli.commands.check_classifier import get_parser, main

__all__ = ["get_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
