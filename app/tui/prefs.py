"""What the dashboard remembers between runs: the theme picked in the command palette.

It lives in data_dir/tui.json (mode 0600), not in a config key: the config file is the
user's own (comments, layout, perhaps read-only or shared by several machines), and a
choice made with two keys should not rewrite it. A `ui.theme` key would also leave the
palette's choice forgotten at the next start, which is the defect (D28).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

PREFS_FILE = "tui.json"

log = logging.getLogger("fleettop.tui")


def load_theme(path: Path) -> str | None:
    """The saved theme's name; None when nothing (readable) was saved."""
    try:
        theme = json.loads(path.read_text(encoding="utf-8")).get("theme")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, AttributeError) as exc:  # unreadable or not our JSON: start with the default
        log.warning("ignoring %s: %s", path, exc)
        return None
    return theme if isinstance(theme, str) else None


def save_theme(path: Path, theme: str) -> None:
    """Write the theme, atomically (aside, then renamed over), readable by the owner only.
    Blocking: run it in a thread."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # data_dir, when created here
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"theme": theme}, handle)
        handle.write("\n")
    os.replace(draft, path)
