"""Rollup bucket math and the tier a history read takes: pure, checked against hand-computed figures."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleettop.rollup import (
    FIVE_MINUTES,
    ONE_HOUR,
    RAW,
    Bucket,
    Point,
    Reading,
    Series,
    Stat,
    bucket_start,
    coarsen,
    format_duration,
    parse_duration,
    plan_read,
    points_of,
    roll_up,
)

KEEP = {"raw": 14, "5m": 90, "1h": 730}
NOW = 1_800_000_000  # 2027-01-15 08:00 UTC, a whole hour
DAY = 86_400


def test_bucket_start_is_epoch_aligned():
    assert bucket_start(NOW, 300) == NOW
    assert bucket_start(NOW + 299, 300) == NOW
    assert bucket_start(NOW + 300, 300) == NOW + 300
    assert bucket_start(NOW + 3599, 3600) == NOW


def test_five_minute_buckets_by_hand():
    readings = [
        Reading(NOW + 0, {"cpu": 10.0, "ram": 50.0, "net_rx": None}, {"/": 40.0}),
        Reading(NOW + 60, {"cpu": 30.0, "ram": 52.0, "net_rx": 1000.0}, {"/": 41.0, "/srv": 7.0}),
        Reading(NOW + 299, {"cpu": 20.0, "ram": 51.0, "net_rx": 3000.0}, {"/": 42.0}),
        Reading(NOW + 300, {"cpu": 90.0, "ram": 60.0, "net_rx": 10.0}, {"/": 43.0}),
    ]
    first, second = roll_up(readings, 300)
    assert first.start == NOW and second.start == NOW + 300
    assert first.metrics["cpu"] == Stat(3, 60.0, 10.0, 30.0)
    assert first.metrics["cpu"].avg == 20.0
    assert first.metrics["net_rx"] == Stat(2, 4000.0, 1000.0, 3000.0)  # the first sample had no rate yet
    assert first.disks == {"/": Stat(3, 123.0, 40.0, 42.0), "/srv": Stat(1, 7.0, 7.0, 7.0)}
    assert second.metrics["cpu"] == Stat(1, 90.0, 90.0, 90.0)


@given(st.lists(st.tuples(st.integers(0, 7200), st.floats(0, 100)), min_size=1, max_size=60), st.randoms())
def test_a_bucket_is_the_same_whatever_the_order_and_equals_hours_made_of_five_minutes(values, rng):
    """Recomputing a bucket (any order of its samples) gives the same row, and an hour merged
    from its 5-minute buckets is the hour rolled up from the samples."""
    readings = [Reading(NOW + at, {"cpu": value}) for at, value in values]
    shuffled = readings[:]
    rng.shuffle(shuffled)
    assert _rounded(roll_up(readings, 300)) == _rounded(roll_up(shuffled, 300))
    assert _rounded(coarsen(roll_up(readings, 300), 3600)) == _rounded(roll_up(readings, 3600))


def _rounded(buckets: list[Bucket]) -> list[tuple]:
    return [(b.start, {k: (s.n, round(s.sum, 6), s.min, s.max) for k, s in b.metrics.items()}) for b in buckets]


@pytest.mark.parametrize(
    ("span", "tier", "step"),
    [
        (3600, RAW, 20),  # 1 h over 200 points: raw samples, 18 s a point rounded to 20 s
        (6 * 3600, RAW, 120),  # 108 s rounded to whole minutes
        (199 * 300, RAW, 300),  # just under 5 min a point: still raw
        (200 * 300, FIVE_MINUTES, 300),  # 5 min a point: one 5-minute bucket each
        (200 * 300 + 1, FIVE_MINUTES, 600),  # just over: two buckets a point
        (DAY, FIVE_MINUTES, 600),
        (7 * DAY, FIVE_MINUTES, 3300),
        (199 * 3600, FIVE_MINUTES, 3600),  # 3582 s a point: whole 5-minute buckets
        (200 * 3600, ONE_HOUR, 3600),  # from 3600 s a point: hourly buckets
        (30 * DAY, ONE_HOUR, 14_400),
        (365 * DAY, ONE_HOUR, 158_400),
    ],
)
def test_the_tier_by_the_range(span, tier, step):
    plan = plan_read(NOW - span, NOW, now=NOW, keep_days=KEEP)
    assert (plan.tier, plan.step) == (tier, step)
    assert plan.points <= 200
    assert plan.since % plan.step == 0 and plan.since <= NOW - span


def test_a_range_older_than_a_tier_keeps_takes_a_coarser_one():
    """Raw samples are kept 14 days: an hour three weeks ago is read from the 5-minute buckets,
    and a day two years ago from whatever hours are left."""
    assert plan_read(NOW - 21 * DAY, NOW - 21 * DAY + 3600, now=NOW, keep_days=KEEP).tier == FIVE_MINUTES
    assert plan_read(NOW - 14 * DAY, NOW - 14 * DAY + 3600, now=NOW, keep_days=KEEP).tier == RAW  # the edge: still kept
    assert plan_read(NOW - 91 * DAY, NOW - 90 * DAY, now=NOW, keep_days=KEEP).tier == ONE_HOUR
    assert plan_read(NOW - 800 * DAY, NOW - 799 * DAY, now=NOW, keep_days=KEEP).tier == ONE_HOUR


def test_an_explicit_step_picks_the_tier_and_is_kept():
    plan = plan_read(NOW - 30 * DAY, NOW, now=NOW, keep_days=KEEP, step=3600)
    assert (plan.tier, plan.step, plan.points) == (ONE_HOUR, 3600, 720)
    plan = plan_read(NOW - DAY, NOW, now=NOW, keep_days=KEEP, step=300)
    assert (plan.tier, plan.step) == (FIVE_MINUTES, 300)
    plan = plan_read(NOW - DAY, NOW, now=NOW, keep_days=KEEP, step=420)  # 7 min: whole 5-minute buckets only
    assert (plan.tier, plan.step) == (FIVE_MINUTES, 600)
    plan = plan_read(NOW - 3600, NOW, now=NOW, keep_days=KEEP, step=60)
    assert (plan.tier, plan.step) == (RAW, 60)


def test_bad_ranges_are_refused():
    with pytest.raises(ValueError, match="empty"):
        plan_read(NOW, NOW, now=NOW, keep_days=KEEP)
    with pytest.raises(ValueError, match="step"):
        plan_read(NOW - 60, NOW, now=NOW, keep_days=KEEP, step=0)


def test_points_and_the_range_summary():
    buckets = roll_up(
        [Reading(NOW + i * 60, {"cpu": float(i)}, {"/": 50.0 + i}) for i in range(20)], 300
    )  # four 5-minute buckets of five samples
    points = points_of(buckets, "cpu", 600)
    assert points == (Point(NOW, 10, 0.0, 4.5, 9.0), Point(NOW + 600, 10, 10.0, 14.5, 19.0))
    assert points_of(buckets, "disk:/", 600)[1].max == 69.0
    assert points_of(buckets, "disk:/nope", 600) == ()
    summary = Series("cpu", "5m", 600, NOW, NOW + 1200, points).summary()
    assert summary is not None and (summary.min, summary.avg, summary.max, summary.n) == (0.0, 9.5, 19.0, 20)
    assert Series("cpu", "5m", 600, NOW, NOW + 1200).summary() is None


def test_durations_as_typed():
    assert [parse_duration(t) for t in ("90s", "5m", "1h", "30d", "2w", "1y", "1h30m", " 7D ")] == [
        90,
        300,
        3600,
        30 * DAY,
        14 * DAY,
        365 * DAY,
        5400,
        7 * DAY,
    ]
    for bad in ("", "h", "5", "5x", "-5m", "0m", "5m3"):
        with pytest.raises(ValueError, match="not a duration"):
            parse_duration(bad)
    assert [format_duration(s) for s in (300, 3600, 14_400, DAY, 90)] == ["5m", "1h", "4h", "1d", "90s"]


def test_noisy_random_series_never_exceed_the_point_budget():
    rng = random.Random(7)
    for _ in range(500):
        since = NOW - rng.randint(1, 800 * DAY)
        until = since + rng.randint(1, 400 * DAY)
        width = rng.randint(10, 400)
        plan = plan_read(since, until, now=NOW, keep_days=KEEP, max_points=width)
        assert plan.points <= width, (since, until, width, plan)
        assert plan.step % (plan.tier.seconds or 1) == 0
        assert plan.tier.seconds or plan.step in (1, 2, 5, 10, 15, 20, 30) or plan.step % 60 == 0
