"""The disk forecast on synthetic hourly series: linear, flat, shrinking, noisy, a cleanup."""

from __future__ import annotations

import random

import pytest

from fleettop.forecast import full_in_text, seconds_until_full

NOW = 1_800_000_000
HOUR = 3600
WEEK_OF_HOURS = range(-7 * 24 + 1, 1)


def series(level) -> list[tuple[int, float]]:
    return [(NOW + h * HOUR, level(h)) for h in WEEK_OF_HOURS]


def test_linear_growth_reaches_full_when_the_line_says():
    """At 0.5 points an hour from 60 % now, 100 % is 80 hours away: "full in 3 d 8 h"."""
    seconds = seconds_until_full(series(lambda h: 60 + 0.5 * h), NOW)
    assert seconds == pytest.approx(80 * HOUR)
    assert full_in_text(seconds) == "full in 3 d 8 h"


def test_flat_and_shrinking_disks_have_no_forecast():
    assert seconds_until_full(series(lambda h: 42.0), NOW) is None
    assert seconds_until_full(series(lambda h: 70 - 0.1 * h), NOW) is None


def test_noise_without_growth_gives_no_forecast_and_noise_with_growth_gives_one():
    rng = random.Random(1)
    flat = series(lambda h: 50 + rng.gauss(0, 2))
    assert seconds_until_full(flat, NOW) is None
    growing = series(lambda h: 50 + 0.2 * h + rng.gauss(0, 1))
    seconds = seconds_until_full(growing, NOW)
    assert seconds is not None and 200 * HOUR < seconds < 300 * HOUR  # 250 h on the line


def test_a_cleanup_in_the_middle_starts_the_fit_again():
    """Grew to 95 %, cleaned to 40 % three days ago, growing 0.1/h since: the forecast is from
    the level and pace after the cleanup (600 h), not from the old slope and level."""

    def level(h: int) -> float:
        return 40 + 0.1 * (h + 72) if h >= -72 else 95 + 0.5 * (h + 72)

    seconds = seconds_until_full(series(level), NOW)
    assert seconds == pytest.approx((100 - 47.2) / 0.1 * HOUR)


def test_just_after_a_cleanup_there_is_too_little_to_say():
    def level(h: int) -> float:
        return 40 + 0.5 * (h + 3) if h >= -3 else 95.0 + 0.2 * h

    assert seconds_until_full(series(level), NOW) is None


def test_already_full_and_points_outside_the_window():
    assert seconds_until_full(series(lambda h: 100 + 0.5 * h), NOW) == 0.0
    assert full_in_text(0.0) == "full now"
    old = [(NOW - 30 * 86_400 + h * HOUR, 10.0 + h) for h in range(48)]  # a month ago: ignored
    assert seconds_until_full(old, NOW) is None
    assert seconds_until_full([], NOW) is None


def test_the_wording():
    assert full_in_text(None) == ""
    assert full_in_text(40 * 60) == "full in 40 min"
    assert full_in_text(2 * HOUR) == "full in 2 h"
    assert full_in_text(2 * HOUR + 5 * 60) == "full in 2 h 5 min"
    assert full_in_text(3 * 86_400) == "full in 3 d"
    assert full_in_text(3 * 86_400 + 4 * HOUR + 59) == "full in 3 d 4 h"
