"""Errors a user sees: each carries one line that says where and what."""


class FleettopError(Exception):
    """A failure to report as one line (exit code 1), never as a traceback."""

    exit_code = 1


class UsageError(FleettopError):
    """The command line asked for something impossible (exit code 2)."""

    exit_code = 2
