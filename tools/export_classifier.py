"""Same as `mmovod export_classifier` (or `mmovod export`); the code is in mmovod/cli/commands/export_classifier.py."""
import sys

from mmovod.cli.commands.export_classifier import get_parser, main

__all__ = ["get_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
