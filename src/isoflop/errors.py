"""Errors that carry a message meant for a person, not a traceback."""


class UserError(Exception):
    """Bad input (a config key, a file, a column): reported as one clear line, exit status 1."""
