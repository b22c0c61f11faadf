"""Same as `mmovod dump_clip_features_lvis_sentences`; the code is in mmovod/cli/commands/dump_clip_features_lvis_sentences.py."""
import sys

from mmovod.cli.program import run_program

if __name__ == "__main__":  # the tool's modules load inside run_program, so a Ctrl-C then is one line too
    sys.exit(run_program("mmovod.cli.commands.dump_clip_features_lvis_sentences:main", "dump_clip_features_lvis_sentences.py"))

from mmovod.cli.commands.dump_clip_features_lvis_sentences import get_parser, main  # noqa: E402  (for callers in Python: tests call main(argv))

__all__ = ["get_parser", "main"]
