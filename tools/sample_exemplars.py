"""Same as `mmovod sample_exemplars`; the code is in mmovod/cli/commands/sample_exemplars.py."""
import sys

from mmovod.cli.commands.sample_exemplars import get_parser, main

__all__ = ["get_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
