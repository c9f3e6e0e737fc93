"""When a disk fills up, by a straight line through its recent use. Pure.

The line is fitted (least squares) to the hourly averages of the last FIT_WINDOW_S
seconds. A cleanup (the use dropping by CLEANUP_DROP points or more from one hour to the
next) starts the fit again after it: the growth before it says nothing of the level now.
A disk is "growing" only when the slope is positive beyond doubt (SIGNIFICANCE standard
errors), so a flat disk with noise gives no forecast rather than "full in 9 years".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

FIT_WINDOW_S = 7 * 86_400
CLEANUP_DROP = 5.0  # percentage points from one hour to the next
MIN_POINTS = 6  # hours of use after the last cleanup
SIGNIFICANCE = 3.0
HORIZON_S = 5 * 365 * 86_400  # further than this is "not filling up"
FULL = 100.0


def seconds_until_full(points: Sequence[tuple[int, float]], now: int) -> float | None:
    """Seconds from `now` until the fitted line reaches 100 % (0 when it is there already),
    from (epoch seconds, disk %) points, oldest first; None when the disk is not growing,
    or too few points follow the last cleanup."""
    recent = [(at, value) for at, value in points if now - FIT_WINDOW_S <= at <= now]
    start = 0
    for index in range(1, len(recent)):
        if recent[index - 1][1] - recent[index][1] >= CLEANUP_DROP:
            start = index
    recent = recent[start:]
    if len(recent) < MIN_POINTS:
        return None
    fit = _least_squares(recent)
    if fit is None:
        return None
    slope, intercept, slope_error = fit
    if slope <= 0 or slope <= SIGNIFICANCE * slope_error:
        return None
    level_now = slope * now + intercept
    remaining = (FULL - level_now) / slope
    if remaining > HORIZON_S:
        return None
    return max(0.0, remaining)


def _least_squares(points: Sequence[tuple[int, float]]) -> tuple[float, float, float] | None:
    """(slope, intercept, standard error of the slope) of y over x; None when x does not vary."""
    count = len(points)
    mean_x = sum(at for at, _ in points) / count
    mean_y = sum(value for _, value in points) / count
    sxx = sum((at - mean_x) ** 2 for at, _ in points)
    if sxx == 0:
        return None
    slope = sum((at - mean_x) * (value - mean_y) for at, value in points) / sxx
    intercept = mean_y - slope * mean_x
    residuals = sum((value - (slope * at + intercept)) ** 2 for at, value in points)
    slope_error = math.sqrt(residuals / (count - 2) / sxx) if count > 2 else math.inf
    return slope, intercept, slope_error


def full_in_text(seconds: float | None) -> str:
    """ "full in 3 d 4 h", "full in 40 min", "full now"; "" for no forecast."""
    if seconds is None:
        return ""
    minutes = int(seconds // 60)
    if minutes < 1:
        return "full now"
    days, rest = divmod(minutes, 1440)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"full in {days} d {hours} h" if hours else f"full in {days} d"
    if hours:
        return f"full in {hours} h {minutes} min" if minutes else f"full in {hours} h"
    return f"full in {minutes} min"
