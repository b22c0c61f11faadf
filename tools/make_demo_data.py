"""Same as `mmovod make_demo_data`; the code is in mmovod/cli/commands/make_demo_data.py."""
import sys

from mmovod.cli.commands.make_demo_data import get_parser, main

__all__ = ["get_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
