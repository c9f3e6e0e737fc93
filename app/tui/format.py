"""Turning figures and host-provided strings into short, safe display text.

Everything that reaches the screen from a host or a user (names, errors, mounts)
goes through `safe()`: it becomes a plain `Text` (never parsed as markup) with
control characters removed, so no terminal escape or Rich tag can get through.
"""

from __future__ import annotations

from datetime import datetime, timezone

from rich.text import Text

from fleettop import figures
from fleettop.domain import shown_percent
from fleettop.text import clean

DASH = "–"


def safe(value: object, style: str = "") -> Text:
    return Text(clean(value), style=style, end="")


def percent(value: float | None) -> str:
    """Rounded as the thresholds judge it (domain.shown_percent), so colour and figure agree."""
    return DASH if value is None else f"{shown_percent(value)}%"


def load(value: float | None) -> str:
    return DASH if value is None else f"{value:.2f}"


def rate(bytes_per_s: float | None) -> str:
    """Bytes per second, in the largest unit that keeps three significant digits."""
    if bytes_per_s is None:
        return DASH
    value = float(bytes_per_s)
    for unit in ("B/s", "K/s", "M/s", "G/s"):
        if value < 1000:
            return f"{value:.0f}{unit}" if value >= 10 or unit == "B/s" else f"{value:.1f}{unit}"
        value /= 1024
    return f"{value:.1f}T/s"


def size(num_bytes: int | float | None) -> str:
    """As free -h: 23Gi, 3.8Gi (fleettop.figures)."""
    return DASH if num_bytes is None else figures.size(num_bytes)


def disk_percent(value: float | None) -> str:
    """Rounded up, as df shows it (fleettop.figures)."""
    return DASH if value is None else figures.disk_percent(value)


def duration(seconds: float | None) -> str:
    """Compact, every unit named: 45s, 12m, 3h05m, 4d02h (fleettop.figures)."""
    return DASH if seconds is None else figures.duration(seconds)


def aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; the store writes UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def age(moment: datetime | None, now: datetime) -> str:
    return DASH if moment is None else duration((now - aware(moment)).total_seconds())


def until(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return DASH
    seconds = (aware(moment) - now).total_seconds()
    return "due" if seconds <= 0 else duration(seconds)


def clock_time(moment: datetime | None, now: datetime) -> str:
    """The time of day, with the date only when it is not today (local time)."""
    if moment is None:
        return DASH
    local, today = aware(moment).astimezone(), aware(now).astimezone()
    return local.strftime("%H:%M:%S" if local.date() == today.date() else "%Y-%m-%d %H:%M")


def timestamp(moment: datetime | None) -> str:
    return DASH if moment is None else aware(moment).astimezone().strftime("%Y-%m-%d %H:%M:%S")
