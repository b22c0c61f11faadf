"""The one exception type tools turn into a clean one-line error."""


class InputError(Exception):
    """Bad user input (file, flag or data). Tools print the message as one line and exit with code 2."""
