"""The probe script (script.sh, shipped as package data) and the command that runs it."""

from __future__ import annotations

from importlib.resources import files

# Read at import: a few kilobytes, before any event loop has work to do.
PROBE_SCRIPT = files(__package__).joinpath("script.sh").read_text(encoding="utf-8")


def probe_command(first_contact: bool) -> str:
    """A fixed command; the script itself goes to its stdin."""
    return f"sh -s -- {1 if first_contact else 0}"
