"""Same as `mmovod get_lvis_cat_info`; the code is in mmovod/cli/commands/get_lvis_cat_info.py."""
import sys

from mmovod.cli.commands.get_lvis_cat_info import get_parser, main

__all__ = ["get_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
