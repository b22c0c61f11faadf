"""Same as `mmovod norm_feat_sum_norm`; the code is in mmovod/cli/commands/norm_feat_sum_norm.py."""
import sys

from mmovod.cli.commands.norm_feat_sum_norm import get_parser, main

__all__ = ["get_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
