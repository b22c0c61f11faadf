"""Same as `mmovod dump_clip_features_lvis_sentences`; the code is in mmovod/cli/commands/."""
import sys

from mmovod.cli.commands.dump_clip_features_lvis_sentences import get_parser, main

__all__ = ["get_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
