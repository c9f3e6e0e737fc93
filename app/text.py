"""Text from hosts and users made safe to print: no terminal escape gets through."""

from __future__ import annotations

import re

# C0 and C1 control characters and DEL; ESC among them, so no escape sequence survives.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def clean(value: object) -> str:
    """One line of plain text: control characters (newlines included) become spaces."""
    return CONTROL.sub(" ", str(value)).strip()


def first_line(error: BaseException | str) -> str:
    """The first line of an error's message; its type's name when the message is empty."""
    lines = str(error).strip().splitlines()
    if lines:
        return lines[0]
    return type(error).__name__ if isinstance(error, BaseException) else ""


def typed_line(error: BaseException) -> str:
    """`ExcType: first line of its message` (or only its type's name): one line for a log."""
    line = str(error).strip().splitlines()
    return f"{type(error).__name__}: {line[0]}" if line else type(error).__name__
