"""Same as `mmovod cache_clip_features`; the code is in mmovod/cli/commands/cache_clip_features.py."""
import sys

from mmovod.cli.commands.cache_clip_features import get_parser, main

__all__ = ["get_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
