"""Same as `mmovod models`; the code is in mmovod/cli/commands/models.py."""
import sys

from mmovod.cli.commands.models import get_parser, main

__all__ = ["get_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
