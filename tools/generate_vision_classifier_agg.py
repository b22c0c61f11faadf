"""Same as `mmovod generate_vision_classifier_agg`; the code is in mmovod/cli/commands/."""
import sys

from mmovod.cli.commands.generate_vision_classifier_agg import get_parser, main

__all__ = ["get_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
