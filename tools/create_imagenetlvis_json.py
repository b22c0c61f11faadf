"""Same as `mmovod create_imagenetlvis_json`; the code is in mmovod/cli/commands/create_imagenetlvis_json.py."""
import sys

from mmovod.cli.commands.create_imagenetlvis_json import get_parser, main

__all__ = ["get_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
