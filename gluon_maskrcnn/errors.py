"""Errors in what the user gave (flags, files, names), and how the scripts report them.

A :class:`UserError` names the flag, file or name at fault and what to do; the scripts print it
as one line and exit with status 2. Any other exception is a programming error and keeps its
traceback.
"""
import sys

__all__ = ["UserError", "run_main", "USER_ERROR_EXIT"]

USER_ERROR_EXIT = 2


class UserError(Exception):
    """A mistake in the user's flags, files or names; the message says what to do."""


def run_main(main, *args):
    """Call a script's ``main``; a :class:`UserError` becomes one line on stderr and exit 2."""
    try:
        return main(*args)
    except UserError as err:
        print("error: %s" % err, file=sys.stderr)
        return USER_ERROR_EXIT
