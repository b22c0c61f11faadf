"""Same as `mmovod download_assets`; the code is in mmovod/cli/commands/download_assets.py."""
import sys

from mmovod.cli.commands.download_assets import get_parser, main

__all__ = ["get_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
