"""`python -m mmovod ...` is the `mmovod` command."""
import sys

from mmovod.cli.main import main

sys.exit(main())
