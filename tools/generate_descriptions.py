"""Same as `mmovod generate_descriptions`; the code is in mmovod/cli/commands/generate_descriptions.py."""
import sys

from mmovod.cli.commands.generate_descriptions import get_parser, main

__all__ = ["get_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
