"""The probe script (script.sh, shipped as package data) and the command that runs it."""

from __future__ import annotations

from importlib.resources import files

# Read at import: a few kilobytes, before any event loop has work to do.
PROBE_SCRIPT = files(__package__).joinpath("script.sh").read_text(encoding="utf-8")


def probe_command(first_contact: bool) -> str:
    """The fixed command of an SSH probe session; the script itself goes to its stdin. The
    shell stays and answers a request line per later collection (see script.sh). `exec`:
    the user's login shell, which sshd runs the command with, makes way for it."""
    return f"exec sh -s -- {1 if first_contact else 0} serve"
