"""Same as `mmovod remove_lvis_rare`; the code is in mmovod/cli/commands/remove_lvis_rare.py."""
import sys

from mmovod.cli.commands.remove_lvis_rare import get_parser, main

__all__ = ["get_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
