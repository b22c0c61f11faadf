"""`python -m mmovod ...` is the `mmovod` command."""
import sys

from mmovod.cli.program import run_program

sys.exit(run_program("mmovod.cli.main:main", "mmovod"))
