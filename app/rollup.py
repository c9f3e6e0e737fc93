"""Long-term history, pure: time buckets, their aggregates, and which tier a read takes.

History is kept in three tiers: the raw samples, 5-minute buckets and 1-hour buckets.
A bucket holds, per metric, the count, sum, minimum and maximum of the values that fell
in it (never the average: sums and counts merge, averages do not), so 5-minute buckets
merge into hours, and any run of buckets into one point of a chart. Buckets are aligned
on the Unix epoch and named by their start, in whole seconds.

Nothing here does I/O: the store feeds samples in and writes the buckets out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# The per-server metrics kept in the rollups; each mount's disk % is kept beside them.
# "disk" is the fullest mount (as the dashboard's column), net_* are bytes per second.
HOST_METRICS = ("cpu", "ram", "swap", "disk", "load1", "net_rx", "net_tx")
PERCENT_METRICS = frozenset({"cpu", "ram", "swap", "disk"})
DISK_PREFIX = "disk:"  # a mount's metric is named disk:<mount>, e.g. disk:/srv/data
DEFAULT_POINTS = 200  # a chart's (or a table's) points when the caller gives no width
DAY_S = 86_400


@dataclass(frozen=True)
class Tier:
    name: str
    seconds: int  # the bucket width; 0 for the raw samples


RAW = Tier("raw", 0)
FIVE_MINUTES = Tier("5m", 300)
ONE_HOUR = Tier("1h", 3600)
TIERS = (RAW, FIVE_MINUTES, ONE_HOUR)  # finest first
ROLLUP_TIERS = (FIVE_MINUTES, ONE_HOUR)


def bucket_start(ts: int, width: int) -> int:
    """The start of the `width`-second bucket `ts` falls in (epoch-aligned)."""
    return ts - ts % width


def is_metric(name: str) -> bool:
    return name in HOST_METRICS or (name.startswith(DISK_PREFIX) and len(name) > len(DISK_PREFIX))


@dataclass(frozen=True)
class Stat:
    """Count, sum, minimum and maximum of the values of one metric in one bucket."""

    n: int
    sum: float
    min: float
    max: float

    @classmethod
    def of(cls, value: float) -> Stat:
        return cls(1, value, value, value)

    @property
    def avg(self) -> float:
        return self.sum / self.n

    def merged(self, other: Stat) -> Stat:
        return Stat(self.n + other.n, self.sum + other.sum, min(self.min, other.min), max(self.max, other.max))


@dataclass
class Bucket:
    """Every metric's Stat over one bucket of one server (a metric with no value in it is absent)."""

    start: int
    metrics: dict[str, Stat] = field(default_factory=dict)
    disks: dict[str, Stat] = field(default_factory=dict)  # by mount

    def add(self, metrics: Mapping[str, Stat], disks: Mapping[str, Stat]) -> None:
        for into, stats in ((self.metrics, metrics), (self.disks, disks)):
            for name, stat in stats.items():
                into[name] = into[name].merged(stat) if name in into else stat


@dataclass(frozen=True)
class Reading:
    """One raw sample as the rollups see it: epoch seconds, host metrics, disk % by mount."""

    at: int
    values: Mapping[str, float | None]
    disks: Mapping[str, float] = field(default_factory=dict)


def roll_up(readings: Iterable[Reading], width: int) -> list[Bucket]:
    """The `width`-second buckets of these samples, oldest first. The same samples give
    the same buckets whatever their order: a bucket recomputed is the same row."""
    buckets: dict[int, Bucket] = {}
    for reading in readings:
        start = bucket_start(reading.at, width)
        bucket = buckets.setdefault(start, Bucket(start))
        bucket.add(
            {
                name: Stat.of(float(value))
                for name, value in reading.values.items()
                if value is not None and name in HOST_METRICS
            },
            {mount: Stat.of(float(value)) for mount, value in reading.disks.items()},
        )
    return [buckets[start] for start in sorted(buckets)]


def coarsen(buckets: Iterable[Bucket], width: int) -> list[Bucket]:
    """Finer buckets merged into `width`-second ones (5-minute ones into hours), oldest first."""
    merged: dict[int, Bucket] = {}
    for bucket in buckets:
        start = bucket_start(bucket.start, width)
        merged.setdefault(start, Bucket(start)).add(bucket.metrics, bucket.disks)
    return [merged[start] for start in sorted(merged)]


# -- reads -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadPlan:
    """Which tier a history read takes, and the width of each point (a whole number of the
    tier's buckets; for raw samples, any number of seconds)."""

    tier: Tier
    step: int
    since: int  # aligned down on the step: the start of the first point
    until: int

    @property
    def points(self) -> int:
        return max(0, math.ceil((self.until - self.since) / self.step))


def plan_read(
    since: int,
    until: int,
    *,
    now: int,
    keep_days: Mapping[str, int],
    max_points: int = DEFAULT_POINTS,
    step: int | None = None,
) -> ReadPlan:
    """The tier and step for a read of [since, until): the coarsest tier whose buckets are no
    wider than the step, among those that still hold `since` (by their retention,
    `keep_days` by tier name); a coarser one when none finer holds it. Without `step`, the
    step that gives at most `max_points` points."""
    if until <= since:
        raise ValueError("the range is empty: until must come after since")
    if step is not None and step < 1:
        raise ValueError("the step must be at least one second")
    wanted = step or max(1, math.ceil((until - since) / max(1, max_points)))

    def holds(tier: Tier) -> bool:
        return since >= now - keep_days.get(tier.name, 0) * DAY_S

    finer = [tier for tier in TIERS if tier.seconds <= wanted and holds(tier)]
    coarser = [tier for tier in TIERS if tier.seconds > wanted and holds(tier)]
    tier = finer[-1] if finer else coarser[0] if coarser else ONE_HOUR
    chosen = _step_at_least(wanted, tier, exact=step is not None)
    while True:
        plan = ReadPlan(tier, chosen, bucket_start(since, chosen), until)
        if step is not None or plan.points <= max_points:
            return plan
        chosen = _step_at_least(chosen + 1, tier, exact=False)  # aligning `since` down added a point


# Steps a raw read rounds up to (beyond them, whole minutes): points fall on round times.
RAW_STEPS = (1, 2, 5, 10, 15, 20, 30, 60)


def _step_at_least(seconds: int, tier: Tier, *, exact: bool) -> int:
    """The smallest step of at least `seconds` that the tier can give: whole buckets of a
    rollup tier; for raw samples, the seconds asked (exact) or a round step."""
    if tier.seconds:
        return max(tier.seconds, math.ceil(seconds / tier.seconds) * tier.seconds)
    if exact:
        return seconds
    return next((step for step in RAW_STEPS if step >= seconds), math.ceil(seconds / 60) * 60)


@dataclass(frozen=True)
class Point:
    at: int  # the start of the point's time slice, epoch seconds
    n: int
    min: float
    avg: float
    max: float

    @classmethod
    def of(cls, at: int, stat: Stat) -> Point:
        return cls(at, stat.n, stat.min, stat.avg, stat.max)


@dataclass(frozen=True)
class Series:
    """One metric of one server over a range, as read from one tier."""

    metric: str
    tier: str
    step: int
    since: int
    until: int
    points: tuple[Point, ...] = ()

    def summary(self) -> Point | None:
        """Min, average (weighted by the samples) and max over the whole range."""
        if not self.points:
            return None
        total = Stat(0, 0.0, math.inf, -math.inf)
        for point in self.points:
            total = total.merged(Stat(point.n, point.avg * point.n, point.min, point.max))
        return Point.of(self.since, total)


def points_of(buckets: Sequence[Bucket], metric: str, step: int) -> tuple[Point, ...]:
    """One metric's points, `step` seconds each, from buckets no wider than that."""
    points = []
    for bucket in coarsen(buckets, step):
        stat = (
            bucket.disks.get(metric[len(DISK_PREFIX) :])
            if metric.startswith(DISK_PREFIX)
            else bucket.metrics.get(metric)
        )
        if stat is not None:
            points.append(Point.of(bucket.start, stat))
    return tuple(points)


# -- durations as typed (--since 30d, --step 5m) -------------------------------------------

DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": DAY_S, "w": 7 * DAY_S, "y": 365 * DAY_S}


def parse_duration(text: str) -> int:
    """Seconds in "90s", "5m", "1h", "30d", "2w", "1y" (or "1h30m"); ValueError otherwise."""
    cleaned = text.strip().lower()
    total, number = 0, ""
    for char in cleaned:
        if char.isdigit():
            number += char
        elif char in DURATION_UNITS and number:
            total += int(number) * DURATION_UNITS[char]
            number = ""
        else:
            break
    else:
        if not number and total > 0:
            return total
    raise ValueError(f"{text!r} is not a duration (a number and a unit: 90s, 5m, 1h, 30d, 2w, 1y)")


def format_duration(seconds: int) -> str:
    """The shortest of "5m", "1h", "4h", "2d" that names a step exactly; else seconds."""
    for unit in ("y", "w", "d", "h", "m"):
        if seconds % DURATION_UNITS[unit] == 0:
            return f"{seconds // DURATION_UNITS[unit]}{unit}"
    return f"{seconds}s"


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def history_document(server: str, series: Sequence[Series]) -> dict[str, Any]:
    """Series of one server as `fleettop history --json` and the HTTP API give them."""
    first = series[0]
    return {
        "server": server,
        "tier": first.tier,
        "step": first.step,
        "since": iso(first.since),
        "until": iso(first.until),
        "series": [
            {
                "metric": one.metric,
                "points": [{"at": iso(p.at), "n": p.n, "min": p.min, "avg": p.avg, "max": p.max} for p in one.points],
            }
            for one in series
        ],
    }
