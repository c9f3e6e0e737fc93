"""Errors a user sees: each carries one line that says where and what."""


class FleettopError(Exception):
    """A failure to report as one line (exit code 1), never as a traceback."""

    exit_code = 1


class UsageError(FleettopError):
    """The command line asked for something impossible (exit code 2)."""

    exit_code = 2


class UnknownServer(UsageError):
    """Names that match no server: worded the same by every command, with where to look."""

    def __init__(self, *names: str):
        listed = ", ".join(repr(name) for name in names)
        super().__init__(f"no server{'s' if len(names) > 1 else ''} named {listed} (see: fleettop servers list)")
