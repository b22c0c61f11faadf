"""Same as `mmovod train_visual_aggregator`; the code is in mmovod/cli/commands/train_visual_aggregator.py."""
import sys

from mmovod.cli.commands.train_visual_aggregator import get_parser, main

__all__ = ["get_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
