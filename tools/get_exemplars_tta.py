"""Same as `mmovod get_exemplars_tta`; the code is in mmovod/cli/commands/get_exemplars_tta.py."""
import sys

from mmovod.cli.commands.get_exemplars_tta import get_parser, main

__all__ = ["get_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
