"""`fleettop alerts`, `fleettop silence`, `fleettop notify test`: the alerts as SQL has them
(no Redis needed: an on-call person can look and acknowledge with the queue down)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta

from fleettop.alerting import RESOLVED_SHOWN, AlertRecord, SilenceRecord, shown
from fleettop.cli.output import one_line_errors
from fleettop.cli.repository import open_repository
from fleettop.config import LoadedConfig
from fleettop.domain import actor
from fleettop.errors import UsageError
from fleettop.figures import duration_seconds
from fleettop.text import clean

MAX_SILENCE_S = 366 * 86400


@one_line_errors
async def cmd_alerts(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    if args.action == "ack":
        if args.id is None:
            raise UsageError("alerts ack: give the alert's ID (the first column of `fleettop alerts`)")
        async with open_repository(loaded) as repo:
            record = await repo.ack_alert(args.id, actor())
        _print_alerts([record], args.json)
        return 0
    if args.id is not None:
        raise UsageError(f"alerts: unexpected {args.id} (did you mean `fleettop alerts ack {args.id}`?)")
    since = datetime.now(UTC) - RESOLVED_SHOWN if args.all else None
    async with open_repository(loaded) as repo:
        records = await repo.alerts(resolved_since=since)
    _print_alerts(records, args.json)
    return 0


def _print_alerts(records: list[AlertRecord], as_json: bool) -> None:
    if as_json:
        print(json.dumps([record.model_dump(mode="json") for record in records], indent=2))
        return
    if not records:
        print("no open alerts")
        return
    now = datetime.now(UTC)
    rows = [("ID", "SERVER", "RULE", "STATE", "VALUE", "PEAK", "THRESHOLD", "SINCE", "NOTE")]
    for r in records:
        rows.append(
            (
                str(r.id),
                clean(r.server),
                clean(f"{r.rule} {r.label}".strip()),
                r.state.value,
                _figure(r.rule, r.value),
                _figure(r.rule, r.peak),
                _figure(r.rule, r.threshold),
                f"{r.started_at:%Y-%m-%d %H:%M} ({_age(now - r.started_at)})",
                _note(r, now),
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join([*(field.ljust(width) for field, width in zip(row, widths)), row[-1]]).rstrip())


def _figure(rule: str, value: float | None) -> str:
    """A percent, or for `down` a count of failed collections."""
    if value is None:
        return "-"
    return str(int(value)) if rule == "down" else f"{shown(rule, value)}%"


def _note(record: AlertRecord, now: datetime) -> str:
    notes = []
    if record.resolved_at is not None:
        notes.append(f"resolved {record.resolved_at:%H:%M}")
    if record.acked_by:
        notes.append(f"acked by {clean(record.acked_by)}")
    if record.silenced_until is not None:
        notes.append(f"silenced {_age(record.silenced_until - now)} more")
    if record.notify_error:
        notes.append(f"notify failed: {clean(record.notify_error)}")
    return "; ".join(notes)


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


@one_line_errors
async def cmd_silence(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    if args.list or args.expire is not None:
        if args.name or args.duration or args.rule or args.comment:
            raise UsageError("silence: --list and --expire take no NAME, --rule, --for or --comment")
        async with open_repository(loaded) as repo:
            records = (
                [await repo.expire_silence(args.expire, actor())] if args.expire is not None else await repo.silences()
            )
        _print_silences(records, args.json, expired=args.expire is not None)
        return 0
    if not args.name or not args.duration:
        raise UsageError("silence: give a server NAME and --for DURATION (e.g. `fleettop silence web-1 --for 2h`)")
    seconds = duration_seconds(args.duration)
    if seconds is None or not 0 < seconds <= MAX_SILENCE_S:
        raise UsageError(f"silence --for {args.duration!r}: give a duration such as 30m, 2h or 7d (at most a year)")
    until = datetime.now(UTC) + timedelta(seconds=seconds)
    async with open_repository(loaded) as repo:
        record = await repo.add_silence(args.name, args.rule, until, args.comment or "", actor())
    _print_silences([record], args.json)
    return 0


def _print_silences(records: list[SilenceRecord], as_json: bool, *, expired: bool = False) -> None:
    if as_json:
        print(json.dumps([record.model_dump(mode="json") for record in records], indent=2))
        return
    if not records:
        print("no silences in force")
        return
    for r in records:
        what = "expired" if expired else f"until {r.until:%Y-%m-%d %H:%M} UTC"
        comment = f"  {clean(r.comment)}" if r.comment else ""
        print(f"{r.id}  {clean(r.server)}  {r.rule or 'every rule'}  {what}  by {clean(r.created_by)}{comment}")


async def cmd_notify(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    """`notify test`: one message to every URL, one line each; 1 when any was not sent."""
    from fleettop.queue.notifier import send_test

    if not loaded.settings.notify.urls:
        raise UsageError("notify.urls is empty: nothing to test (see `fleettop config example`)")
    results = await send_test(loaded.settings, actor())
    for target, error in results:
        print(f"sent      {target.shown}" if error is None else f"not sent  {target.shown}: {clean(error)}")
    return 0 if all(error is None for _, error in results) else 1
