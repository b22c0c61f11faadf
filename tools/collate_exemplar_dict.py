"""Same as `mmovod collate_exemplar_dict`; the code is in mmovod/cli/commands/collate_exemplar_dict.py."""
import sys

from mmovod.cli.commands.collate_exemplar_dict import get_parser, main

__all__ = ["get_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
