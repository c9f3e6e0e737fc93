"""Figures as the standard tools show them, the same in the CLI and the dashboard.

Sizes in binary units with free -h's letters (Ki, Mi, Gi, Ti: powers of 1024), cut down
rather than rounded, as free -h does: 23.54 GiB is "23Gi", 3.86 GiB "3.8Gi". A disk's
percent is rounded up, as df does (a disk 90.1 % full is "91%", never "90%"). Durations
name every unit ("20h23m", "302d07h"), so none reads as a time of day.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

from fleettop.domain import shown_disk_percent
from fleettop.errors import UsageError

SIZE_UNITS = ("B", "Ki", "Mi", "Gi", "Ti", "Pi")


def size(num_bytes: int | float) -> str:
    value = max(0.0, float(num_bytes))
    unit = SIZE_UNITS[0]
    for unit in SIZE_UNITS:
        if value < 1024 or unit == SIZE_UNITS[-1]:
            break
        value /= 1024
    if unit == "B":
        return f"{math.floor(value)}B"
    if value < 10:
        return f"{math.floor(value * 10) / 10:.1f}{unit}"
    return f"{math.floor(value)}{unit}"


def disk_percent(value: float) -> str:
    return f"{shown_disk_percent(value)}%"


def duration(seconds: float) -> str:
    """45s, 12m, 3h05m, 4d02h."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


# A time as the CLI's --since/--until and the HTTP API's since/until take it.
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration_seconds(text: str) -> float | None:
    """'90s', '30m', '2h', '7d', '2w' in seconds; None when it is not one."""
    match = _DURATION.match(text)
    return float(match[1]) * _UNIT_SECONDS[match[2]] if match else None


def parse_time(text: str | None, option: str, now: datetime | None = None) -> datetime | None:
    """'30m', '24h', '7d', '2w' (that long ago) or an ISO-8601 time (UTC unless it says otherwise)."""
    if text is None:
        return None
    now = now or datetime.now(UTC)
    seconds = duration_seconds(text)
    if seconds is not None:
        try:
            return now - timedelta(seconds=seconds)
        except OverflowError:
            raise UsageError(f"{option} {text!r}: reaches back before the year 1") from None
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"{option} {text!r}: give a duration such as 30m, 24h, 7d or an ISO-8601 time") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
