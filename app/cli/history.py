"""`fleettop history NAME`: one server's history over a range, from the tier the range needs
(raw samples for hours, 5-minute buckets for days, 1-hour buckets beyond), and
`export --step`: every server's rollups at a fixed step."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from fleettop.cli.output import reader_may_leave
from fleettop.cli.repository import open_repository
from fleettop.config import LoadedConfig
from fleettop.errors import UnknownServer, UsageError
from fleettop.figures import parse_time
from fleettop.rollup import (
    DISK_PREFIX,
    HOST_METRICS,
    TIERS,
    Series,
    format_duration,
    history_document,
    is_metric,
    iso,
    parse_duration,
)
from fleettop.store.repo import Repository
from fleettop.text import clean

DEFAULT_SPAN = timedelta(days=1)


POINT_FIELDS = ("at", "metric", "n", "min", "avg", "max")


MAX_STEP = 10 * 365 * 86_400
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # nothing is stored before it, and its seconds are the buckets'
TIER_SECONDS = {tier.name: tier.seconds for tier in TIERS}


def parse_step(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        step = parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"--step: {exc}") from None
    if step > MAX_STEP:
        raise UsageError(f"--step {clean(text)}: at most 10 years")
    return step


def time_range(args: argparse.Namespace, default_span: timedelta = DEFAULT_SPAN) -> tuple[datetime, datetime]:
    """--until (default: now) and --since (default: `default_span` before --until)."""
    now = datetime.now(UTC)
    until = parse_time(args.until, "--until", now) or now
    since = parse_time(args.since, "--since", now) or until - default_span
    for option, when in (("--since", since), ("--until", until)):
        if when < EPOCH:
            raise UsageError(f"{option}: {when.date().isoformat()} is before 1970, when nothing was collected")
    if since >= until:
        raise UsageError("--since must be before --until")
    return since, until


def finest_span(loaded: LoadedConfig, step: int) -> timedelta:
    """How far back points `step` apart are kept: the retention of the finest tier that fits it."""
    keep = loaded.settings.retention.keep_days()
    finest = max((tier for tier in TIERS if tier.seconds <= step), key=lambda tier: tier.seconds)
    return timedelta(days=keep[finest.name])


def check_step(step: int | None, text: str | None, series: list[Series], loaded: LoadedConfig) -> None:
    """A step asked for that the tiers kept for this range cannot give is an error, not a coarser answer."""
    if step is None:
        return
    coarser = max(series, key=lambda s: TIER_SECONDS[s.tier], default=None)
    if coarser is not None and TIER_SECONDS[coarser.tier] > step:
        days = finest_span(loaded, step).days
        raise UsageError(
            f"--step {clean(text)}: points that close are kept {days} days: give a --since within them, "
            f"or a larger --step"
        )


def check_metrics(names: list[str] | None) -> list[str]:
    """The --metric names (repeated, or separated by commas); every host metric by default."""
    metrics = [name.strip() for given in names or [] for name in given.split(",") if name.strip()]
    for metric in metrics:
        if not is_metric(metric):
            raise UsageError(f"--metric {clean(metric)!r}: one of {', '.join(HOST_METRICS)}, or disk:MOUNT (disk:/var)")
    return metrics or list(HOST_METRICS)


async def cmd_history(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    since, until = time_range(args)
    step = parse_step(args.step)
    metrics = check_metrics(args.metric)
    async with open_repository(loaded) as repo:
        server = await repo.get_server(args.name)
        if server is None:
            raise UnknownServer(args.name)
        series = [await repo.history_series(server.id, metric, since, until, step=step) for metric in metrics]
        check_step(step, args.step, series, loaded)
        mounts = await repo.history_mounts(server.id)
    with reader_may_leave():
        _print(args, server.name, series, mounts)
    return 0


def _print(args: argparse.Namespace, name: str, series: list[Series], mounts: list[str]) -> None:
    if args.json:
        print(json.dumps(history_document(name, series), indent=2))
    elif args.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(POINT_FIELDS)
        writer.writerows(_csv_rows(series))
    else:
        _print_table(name, series, mounts)


def _csv_rows(series: list[Series], server: str | None = None) -> list[list[Any]]:
    prefix = [server] if server is not None else []
    return [[*prefix, iso(p.at), one.metric, p.n, p.min, p.avg, p.max] for one in series for p in one.points]


def _print_table(name: str, series: list[Series], mounts: list[str]) -> None:
    """One line a point: each metric's average, or with one metric its min, avg and max."""
    first = series[0]
    tier = {"raw": "raw samples", "5m": "5-minute buckets", "1h": "1-hour buckets"}[first.tier]
    print(f"{clean(name)}: {iso(first.since)} to {iso(first.until)}, every {format_duration(first.step)} ({tier})")
    if not any(one.points for one in series):
        known = ", ".join(DISK_PREFIX + clean(mount) for mount in mounts) or "none yet"
        print(f"no history in this range (mounts with history: {known})")
        return
    single = len(series) == 1
    headers = ["at", *(["n", "min", "avg", "max"] if single else [one.metric for one in series])]
    times = sorted({p.at for one in series for p in one.points})
    by_metric = [{p.at: p for p in one.points} for one in series]
    rows = []
    for at in times:
        row = [datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M")]
        if single:
            point = by_metric[0][at]
            row += [str(point.n), *(_figure(series[0].metric, value) for value in (point.min, point.avg, point.max))]
        else:
            row += [
                _figure(one.metric, points[at].avg) if at in points else "-" for one, points in zip(series, by_metric)
            ]
        rows.append(row)
    widths = [max(len(headers[c]), *(len(row[c]) for row in rows)) for c in range(len(headers))]
    print("  ".join(h.ljust(w) if c == 0 else h.rjust(w) for c, (h, w) in enumerate(zip(headers, widths))))
    for row in rows:
        print("  ".join(v.ljust(w) if c == 0 else v.rjust(w) for c, (v, w) in enumerate(zip(row, widths))))


def _figure(metric: str, value: float) -> str:
    if metric.startswith("net_"):
        return f"{value:.0f}"
    if metric == "load1":
        return f"{value:.2f}"
    return f"{value:.1f}"


# -- export --step -----------------------------------------------------------------------------


async def export_rollups(args: argparse.Namespace, loaded: LoadedConfig, step: int) -> int:
    """`export --step`: every metric of every server (or --server) at this step, as rows of
    server, at, metric, n, min, avg, max; by default over all the history kept."""
    since, until = time_range(args, finest_span(loaded, step))
    if args.output:
        raise UsageError("--output is not supported with --step yet: redirect stdout")
    async with open_repository(loaded) as repo:
        servers = await repo.list_servers(tag=args.tag)
        if args.server:
            servers = [server for server in servers if server.name == args.server]
            if not servers:
                raise UnknownServer(args.server)
        records: list[list[Any]] = []
        for server in servers:
            series = await _every_metric(repo, server.id, since, until, step)
            check_step(step, args.step, series, loaded)
            records += _csv_rows(series, server.name)
    with reader_may_leave():
        if args.format == "json":
            print(json.dumps([dict(zip(("server", *POINT_FIELDS), record)) for record in records], indent=1))
        else:
            writer = csv.writer(sys.stdout, lineterminator="\n")
            writer.writerow(("server", *POINT_FIELDS))
            writer.writerows(records)
    return 0


async def _every_metric(repo: Repository, server_id: int, since: datetime, until: datetime, step: int) -> list[Series]:
    metrics = [*HOST_METRICS, *(DISK_PREFIX + mount for mount in await repo.history_mounts(server_id))]
    return [await repo.history_series(server_id, metric, since, until, step=step) for metric in metrics]
