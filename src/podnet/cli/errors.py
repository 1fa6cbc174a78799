"""The CLI's error: a one-line message for the user, exit code 1, no traceback."""


class UserError(Exception):
    pass
