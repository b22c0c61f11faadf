"""The exception types tools turn into one clean line: bad input (exit 2) and an interruption that kept work (exit 130)."""


class InputError(Exception):
    """Bad user input (file, flag or data). Tools print the message as one line and exit with code 2."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C after some finished work was kept (cache shards, checkpoints); the message says what is
    kept and how to resume. A plain KeyboardInterrupt means nothing was written."""
