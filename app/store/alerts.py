"""Alert state, the notification outbox and silences in SQL.

`judge` runs inside the transaction that stores the samples (or the failed collection) it
judges, so a state change and the notifications it owes commit with the sample or not at
all. Concurrent evaluations of one server (two workers, a manual and a scheduled collection)
are ordered by a conditional update of the server's `alert_hosts` row: the row stays locked
until commit, the second transaction then reads the alerts the first wrote, and an
observation not newer than the last one judged is skipped. `uq_alerts_open` (one open
episode per server, rule, label) and `uq_alert_outbox_event` (one row per event and URL)
hold whatever happens.

Delivery: every worker claims due outbox rows with one conditional UPDATE (unclaimed, or
claimed longer ago than the lease: its worker died), so each row goes to one worker; a worker
killed before it delivered leaves the rows to the next one after the lease.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from fleettop.alerting import (
    Alert,
    AlertPolicy,
    AlertRecord,
    AlertState,
    Evaluation,
    Event,
    EventKind,
    Silence,
    SilenceRecord,
    describe,
    evaluate_failure,
    evaluate_retired,
    evaluate_sample,
    fingerprint,
    readings,
    still_open,
)
from fleettop.config import Settings
from fleettop.domain import Metrics, Thresholds
from fleettop.store.tables import AlertHostRow, AlertRow, OutboxRow, SampleRow, ServerRow, SilenceRow

# Typed as the Tables they are (Core statements; mypy sees FromClause).
ALERTS = cast(Table, AlertRow.__table__)
HOSTS = cast(Table, AlertHostRow.__table__)
OUTBOX = cast(Table, OutboxRow.__table__)
SILENCES = cast(Table, SilenceRow.__table__)
SERVERS = cast(Table, ServerRow.__table__)
SAMPLES = cast(Table, SampleRow.__table__)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_OPEN = ALERTS.c.state != AlertState.RESOLVED.value


@dataclass(frozen=True)
class AlertSetup:
    """What judging needs besides the observations: the rules' settings and where to send
    (the fingerprints of notify.urls)."""

    policy: AlertPolicy = field(default_factory=AlertPolicy)
    targets: tuple[str, ...] = ()

    @classmethod
    def of(cls, settings: Settings) -> AlertSetup:
        rules, notify = settings.alerts, settings.notify
        policy = AlertPolicy(
            for_samples=rules.for_samples,
            recovery_margin=rules.recovery_margin,
            down_after=rules.down_after,
            repeat_s=rules.repeat,
            send_resolved=notify.send_resolved,
        )
        return cls(policy, tuple(fingerprint(url) for url in notify.urls))


@dataclass(frozen=True)
class Observation:
    """A sample (metrics) or a collection failed for good (metrics None) of one server."""

    server_id: int
    server_name: str
    at: datetime
    thresholds: Thresholds
    metrics: Metrics | None = None
    # Whether the server had an open alert when its collection began (begin_collection reads it
    # with the server, at no cost): without one, a sample that breaches nothing is not judged.
    open_alerts: bool = True


@dataclass(frozen=True)
class Delivery:
    """The claimed outbox rows of one URL: one message."""

    target: str
    ids: list[int]
    lines: list[str]
    kinds: list[EventKind]
    attempts: int  # the most attempts any of them had (this one included)


async def judge(
    conn: AsyncConnection, dialect: str, setup: AlertSetup, observations: Sequence[Observation]
) -> list[int]:
    """Judge the observations, write the alerts and the outbox, in a few statements for the
    whole batch; the servers with a pending alert after it (to collect them again sooner)."""
    if not observations:
        return []
    # Nothing open and nothing past a threshold: nothing to read or write (the usual case).
    busy = sorted(
        {o.server_id for o in observations if o.open_alerts or o.metrics is None or _breaches(setup.policy, o)}
    )
    if not busy:
        return []
    judged, open_alerts = await _lock_and_read(conn, dialect, busy)
    if missing := [server_id for server_id in busy if server_id not in judged]:  # a server's first alert
        await conn.execute(_insert_ignore(dialect, HOSTS), [{"server_id": s, "evaluated_at": EPOCH} for s in missing])
        # Read again once locked: a concurrent first judgement of the same server (Postgres) may
        # have opened its alerts meanwhile, and they are what this one must see.
        locked, fresh = await _lock_and_read(conn, dialect, missing)
        judged.update(locked)
        for server_id in missing:
            open_alerts[server_id] = fresh.get(server_id, [])
    silences: dict[int, list[Silence]] | None = None  # read once a notification is owed: they only hold back
    writes = _Writes()
    written: set[int] = set()  # servers whose alerts changed (more than their latest figure)
    for observation in sorted(observations, key=lambda o: (o.server_id, o.at)):
        server_id = observation.server_id
        if server_id not in judged or observation.at <= judged[server_id]:
            continue  # judged already (a duplicate delivery), or a newer one was
        judged[server_id] = observation.at
        current = open_alerts.get(server_id, [])
        result = _evaluate(setup.policy, observation, current, silences.get(server_id, []) if silences else [])
        if result.events and silences is None:
            silences = await _silences(conn, busy, min(o.at for o in observations))
            result = _evaluate(setup.policy, observation, current, silences.get(server_id, []))
        open_alerts[server_id] = still_open(current, result)
        if writes.add(result, observation.server_name, current):
            written.add(server_id)
    if not written:  # the open alerts' figures alone moved: read from the newest sample when shown
        return _pending(busy, open_alerts)
    await writes.execute(conn, setup.targets)
    await conn.execute(_SET_JUDGED, [{"b_server_id": s, "b_evaluated_at": judged[s]} for s in sorted(written)])
    return _pending(busy, open_alerts)


def _pending(server_ids: Sequence[int], open_alerts: dict[int, list[Alert]]) -> list[int]:
    return [s for s in server_ids if any(a.state is AlertState.PENDING for a in open_alerts.get(s, ()))]


_ALERT_FIELDS = (
    "server_id", "rule", "label", "state", "value", "peak", "threshold", "count", "started_at", "fired_at",
    "resolved_at", "notified_at", "acked_by", "acked_at",
)  # fmt: skip


def _evaluate(
    policy: AlertPolicy, observation: Observation, current: list[Alert], silences: list[Silence]
) -> Evaluation:
    if observation.metrics is None:
        return evaluate_failure(policy, observation.server_id, current, observation.at, silences)
    return evaluate_sample(
        policy, observation.server_id, current, observation.metrics, observation.thresholds, silences
    )


async def _lock_and_read(
    conn: AsyncConnection, dialect: str, server_ids: Sequence[int]
) -> tuple[dict[int, datetime], dict[int, list[Alert]]]:
    """When each server was last judged, and its open alerts, its alert_hosts row locked.
    Postgres: locked until commit, in one order (no deadlock); a concurrent evaluation of the
    same server waits there, and the alerts are read after, so they include what it wrote.
    SQLite: this transaction holds the database's write lock already (the samples went first):
    one query reads both."""
    if dialect == "postgresql":
        query = (
            select(HOSTS.c.server_id, HOSTS.c.evaluated_at)
            .where(HOSTS.c.server_id.in_(server_ids))
            .order_by(HOSTS.c.server_id)
            .with_for_update()
        )
        locked = {server_id: at for server_id, at in await conn.execute(query)}
        return locked, await _open_alerts(conn, server_ids)
    joined = HOSTS.outerjoin(ALERTS, and_(ALERTS.c.server_id == HOSTS.c.server_id, _OPEN))
    rows = await conn.execute(
        select(HOSTS.c.evaluated_at.label("judged_at"), HOSTS.c.server_id.label("host_id"), ALERTS)
        .select_from(joined)
        .where(HOSTS.c.server_id.in_(server_ids))
    )
    judged: dict[int, datetime] = {}
    found: dict[int, list[Alert]] = {}
    for row in rows:
        judged[row.host_id] = row.judged_at
        if row.id is not None:
            found.setdefault(row.host_id, []).append(_alert(row))
    return judged, found


_SET_JUDGED = (
    update(HOSTS)
    .where(HOSTS.c.server_id == bindparam("b_server_id"))
    .values(evaluated_at=bindparam("b_evaluated_at", type_=HOSTS.c.evaluated_at.type))
)
_UPDATE_ALERT = (
    update(ALERTS)
    .where(ALERTS.c.id == bindparam("b_id"))
    .values({name: bindparam(f"b_{name}", type_=ALERTS.c[name].type) for name in _ALERT_FIELDS})
)


def _episode(alert: Alert) -> tuple[int, str, str, datetime]:
    return (alert.server_id, alert.rule, alert.label, alert.started_at)


class _Writes:
    """What a batch of evaluations writes, gathered: one statement per kind of write. An alert
    new in this batch (no id yet) is followed by its episode, should a later observation of
    the same batch change or clear it."""

    def __init__(self) -> None:
        self.deleted: set[int] = set()
        self.updated: dict[int, Alert] = {}
        self.inserted: dict[tuple[int, str, str, datetime], Alert] = {}
        self.events: list[tuple[Event, str]] = []

    def add(self, result: Evaluation, server_name: str, before: Sequence[Alert]) -> bool:
        """Whether it writes anything: an open alert whose value alone moved is not rewritten
        (list_alerts shows the newest sample's figure)."""
        stored = {alert.id: alert for alert in before}
        changed = [a for a in result.changed if a.id is None or replace(stored[a.id], value=a.value) != a]
        for alert in result.cleared:
            if alert.id is None:
                self.inserted.pop(_episode(alert), None)
            else:
                self.deleted.add(alert.id)
                self.updated.pop(alert.id, None)
        for alert in changed:
            if alert.id is None:
                self.inserted[_episode(alert)] = alert
            else:
                self.updated[alert.id] = alert
        self.events.extend((event, server_name) for event in result.events)
        return bool(result.cleared or changed or result.events)

    async def execute(self, conn: AsyncConnection, targets: Sequence[str]) -> None:
        if self.deleted:
            await conn.execute(delete(ALERTS).where(ALERTS.c.id.in_(sorted(self.deleted))))
        if self.updated:
            await conn.execute(
                _UPDATE_ALERT,
                [{"b_id": id_, **{f"b_{k}": v for k, v in _values(a).items()}} for id_, a in self.updated.items()],
            )
        ids = {_episode(a): a.id for a in self.updated.values() if a.id is not None}
        if self.inserted:
            episodes = list(self.inserted)
            new_ids = (
                (
                    await conn.execute(
                        insert(ALERTS).returning(ALERTS.c.id, sort_by_parameter_order=True),
                        [_values(self.inserted[episode]) for episode in episodes],
                    )
                )
                .scalars()
                .all()
            )
            ids.update(zip(episodes, new_ids))
        if not self.events or not targets:
            return
        now = datetime.now(UTC)
        rows: list[dict[str, Any]] = []
        for event, server_name in self.events:
            alert = event.alert
            event_at = alert.resolved_at if event.kind is EventKind.RESOLVED else alert.notified_at
            line = describe(event.kind, alert, server_name)
            alert_id = alert.id if alert.id is not None else ids[_episode(alert)]
            rows.extend(
                {
                    "alert_id": alert_id,
                    "kind": event.kind.value,
                    "event_at": event_at,
                    "target": target,
                    "line": line,
                    "created_at": now,
                    "next_try_at": now,
                    "attempts": 0,
                }  # fmt: skip
                for target in targets
            )
        await conn.execute(insert(OUTBOX), rows)


def _breaches(policy: AlertPolicy, observation: Observation) -> bool:
    assert observation.metrics is not None
    readings_ = readings(observation.metrics, observation.thresholds, policy.recovery_margin)
    return any(reading.breached for reading in readings_.values())


def has_open_alerts(server_id: Any) -> Any:
    """SQL: whether the server (a column) has an open alert; for begin_collection's query."""
    return select(ALERTS.c.id).where(ALERTS.c.server_id == server_id, _OPEN).exists()


async def _open_alerts(conn: AsyncConnection, server_ids: Sequence[int]) -> dict[int, list[Alert]]:
    found: dict[int, list[Alert]] = {}
    for row in await conn.execute(select(ALERTS).where(_OPEN, ALERTS.c.server_id.in_(server_ids))):
        found.setdefault(row.server_id, []).append(_alert(row))
    return found


async def _silences(conn: AsyncConnection, server_ids: Sequence[int], at: datetime) -> dict[int, list[Silence]]:
    """The silences of these servers in force at `at` or later (Silence.covers says when)."""
    found: dict[int, list[Silence]] = {}
    query = select(SILENCES).where(SILENCES.c.server_id.in_(server_ids), SILENCES.c.until > at)
    for row in await conn.execute(query):
        found.setdefault(row.server_id, []).append(Silence(row.server_id, row.until, row.rule, row.id))
    return found


def _values(alert: Alert) -> dict[str, Any]:
    return {
        "server_id": alert.server_id,
        "rule": alert.rule,
        "label": alert.label,
        "state": alert.state.value,
        "value": alert.value,
        "peak": alert.peak,
        "threshold": alert.threshold,
        "count": alert.count,
        "started_at": alert.started_at,
        "fired_at": alert.fired_at,
        "resolved_at": alert.resolved_at,
        "notified_at": alert.notified_at,
        "acked_by": alert.acked_by,
        "acked_at": alert.acked_at,
    }


def _alert(row: Any) -> Alert:
    return Alert(
        server_id=row.server_id,
        rule=row.rule,
        label=row.label,
        state=AlertState(row.state),
        started_at=row.started_at,
        value=row.value,
        peak=row.peak,
        threshold=row.threshold,
        count=row.count,
        fired_at=row.fired_at,
        resolved_at=row.resolved_at,
        notified_at=row.notified_at,
        acked_by=row.acked_by,
        acked_at=row.acked_at,
        id=row.id,
    )


def _insert_ignore(dialect: str, table: Any) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


# -- delivery ----------------------------------------------------------------------


def _due(now: datetime, lease: timedelta, targets: Sequence[str]) -> Any:
    return and_(
        OUTBOX.c.target.in_(targets),
        OUTBOX.c.sent_at.is_(None),
        OUTBOX.c.failed_at.is_(None),
        OUTBOX.c.next_try_at <= now,
        or_(OUTBOX.c.claimed_at.is_(None), OUTBOX.c.claimed_at < now - lease),
    )


async def claim(
    conn: AsyncConnection, now: datetime, group_wait: timedelta, lease: timedelta, targets: Sequence[str]
) -> list[Delivery]:
    """Claim every due outbox row for these URLs (by fingerprint: the claiming worker's
    notify.urls) once the oldest has waited group_wait (a round's alerts together); one Delivery
    per URL. A row for a URL this worker lacks is left to a worker that has it."""
    due = _due(now, lease, targets)
    oldest = (await conn.execute(select(func.min(OUTBOX.c.created_at)).where(due))).scalar_one_or_none()
    if oldest is None or oldest + group_wait > now:
        return []
    token = str(uuid.uuid4())
    await conn.execute(
        update(OUTBOX).where(due).values(claimed_by=token, claimed_at=now, attempts=OUTBOX.c.attempts + 1)
    )
    rows = (await conn.execute(select(OUTBOX).where(OUTBOX.c.claimed_by == token).order_by(OUTBOX.c.id))).all()
    deliveries: dict[str, Delivery] = {}
    for row in rows:
        delivery = deliveries.setdefault(row.target, Delivery(row.target, [], [], [], 0))
        delivery.ids.append(row.id)
        delivery.lines.append(row.line)
        delivery.kinds.append(EventKind(row.kind))
        deliveries[row.target] = Delivery(
            row.target, delivery.ids, delivery.lines, delivery.kinds, max(delivery.attempts, row.attempts)
        )
    return list(deliveries.values())


async def delivered(conn: AsyncConnection, ids: Sequence[int], now: datetime) -> None:
    await conn.execute(update(OUTBOX).where(OUTBOX.c.id.in_(ids)).values(sent_at=now, claimed_by=None, error=None))


async def not_delivered(
    conn: AsyncConnection, ids: Sequence[int], error: str, now: datetime, retry_at: datetime | None
) -> None:
    """A failed delivery: tried again at retry_at, or given up (None), the error kept to be shown."""
    values: dict[str, Any] = {"claimed_by": None, "claimed_at": None, "error": error[:1000]}
    if retry_at is None:
        values["failed_at"] = now
    else:
        values["next_try_at"] = retry_at
    await conn.execute(update(OUTBOX).where(OUTBOX.c.id.in_(ids)).values(values))


# -- what the front ends show and do ----------------------------------------------


async def list_alerts(conn: AsyncConnection, now: datetime, resolved_since: datetime | None) -> list[AlertRecord]:
    """Open alerts (and the resolved ones since `resolved_since`), firing first, newest first."""
    condition = _OPEN if resolved_since is None else or_(_OPEN, ALERTS.c.resolved_at >= resolved_since)
    return await _records(conn, condition, now)


async def _records(conn: AsyncConnection, condition: Any, now: datetime) -> list[AlertRecord]:
    rows = (
        await conn.execute(
            select(ALERTS, SERVERS.c.name.label("server_name"))
            .join(SERVERS, SERVERS.c.id == ALERTS.c.server_id)
            .where(condition)
            .order_by(ALERTS.c.started_at.desc(), ALERTS.c.id.desc())
        )
    ).all()
    if not rows:
        return []
    alert_ids = [row.id for row in rows]
    errors: dict[int, str] = {}
    failing = (
        select(OUTBOX.c.alert_id, OUTBOX.c.error)
        .where(OUTBOX.c.alert_id.in_(alert_ids), OUTBOX.c.sent_at.is_(None), OUTBOX.c.error.is_not(None))
        .order_by(OUTBOX.c.id)
    )
    for alert_id, error in await conn.execute(failing):
        errors[alert_id] = error
    silenced = await _silences(conn, sorted({row.server_id for row in rows}), now)
    latest = await _latest_figures(
        conn, sorted({row.server_id for row in rows if row.state != AlertState.RESOLVED.value})
    )
    order = {AlertState.FIRING.value: 0, AlertState.PENDING.value: 1, AlertState.RESOLVED.value: 2}
    records = []
    for row in sorted(rows, key=lambda r: order[r.state]):
        alert = _alert(row)
        until = [s.until for s in silenced.get(row.server_id, []) if s.rule in (None, row.rule)]
        records.append(
            AlertRecord(
                id=row.id,
                server=row.server_name,
                server_id=row.server_id,
                rule=row.rule,
                label=row.label,
                state=alert.state,
                value=latest.get((row.server_id, row.rule, row.label), row.value)
                if row.state != "resolved"
                else row.value,
                peak=row.peak,
                threshold=row.threshold,
                started_at=row.started_at,
                fired_at=row.fired_at,
                resolved_at=row.resolved_at,
                acked_by=row.acked_by,
                acked_at=row.acked_at,
                silenced_until=max(until) if until else None,
                notify_error=errors.get(row.id),
            )
        )
    return records


async def _latest_figures(conn: AsyncConnection, server_ids: Sequence[int]) -> dict[tuple[int, str, str], float]:
    """The newest sample's cpu, ram and disk figures of these servers, keyed (server, rule, label):
    an open alert's value (judge does not rewrite an alert whose figure alone moved)."""
    if not server_ids:
        return {}
    newest = (
        select(SAMPLES.c.server_id, func.max(SAMPLES.c.collected_at).label("at"))
        .where(SAMPLES.c.server_id.in_(server_ids))
        .group_by(SAMPLES.c.server_id)
        .subquery()
    )
    query = select(SAMPLES.c.server_id, SAMPLES.c.cpu_percent, SAMPLES.c.mem_percent, SAMPLES.c.disks).join(
        newest, and_(SAMPLES.c.server_id == newest.c.server_id, SAMPLES.c.collected_at == newest.c.at)
    )
    figures: dict[tuple[int, str, str], float] = {}
    for server_id, cpu, ram, disks in await conn.execute(query):
        if cpu is not None:
            figures[(server_id, "cpu", "")] = cpu
        figures[(server_id, "ram", "")] = ram
        for disk in disks or []:
            figures[(server_id, "disk", disk["mount"])] = disk["percent"]
    return figures


async def server_alerts(conn: AsyncConnection, server_id: int, now: datetime, limit: int) -> list[AlertRecord]:
    return (await _records(conn, ALERTS.c.server_id == server_id, now))[:limit]


async def ack(conn: AsyncConnection, alert_id: int, who: str, now: datetime) -> AlertRecord | None:
    """Acknowledge an open alert (no more reminders); None when there is no open alert by that id."""
    done = await conn.execute(
        update(ALERTS).where(ALERTS.c.id == alert_id, _OPEN).values(acked_by=who[:255], acked_at=now)
    )
    if done.rowcount != 1:
        return None
    return (await _records(conn, ALERTS.c.id == alert_id, now))[0]


async def add_silence(
    conn: AsyncConnection, server_id: int, rule: str | None, until: datetime, comment: str, who: str, now: datetime
) -> int:
    return (
        await conn.execute(
            insert(SILENCES)
            .values(server_id=server_id, rule=rule, until=until, comment=comment, created_by=who[:255], created_at=now)
            .returning(SILENCES.c.id)
        )
    ).scalar_one()


async def list_silences(conn: AsyncConnection, now: datetime, silence_id: int | None = None) -> list[SilenceRecord]:
    """The silences in force (or the one by id, in force or not), ending soonest first."""
    condition = SILENCES.c.until > now if silence_id is None else SILENCES.c.id == silence_id
    rows = await conn.execute(
        select(SILENCES, SERVERS.c.name.label("server_name"))
        .join(SERVERS, SERVERS.c.id == SILENCES.c.server_id)
        .where(condition)
        .order_by(SILENCES.c.until, SILENCES.c.id)
    )
    return [
        SilenceRecord(
            id=r.id,
            server=r.server_name,
            rule=r.rule,
            until=r.until,
            comment=r.comment,
            created_by=r.created_by,
            created_at=r.created_at,
        )
        for r in rows
    ]


async def expire_silence(conn: AsyncConnection, silence_id: int, now: datetime) -> bool:
    done = await conn.execute(
        update(SILENCES).where(SILENCES.c.id == silence_id, SILENCES.c.until > now).values(until=now)
    )
    return bool(done.rowcount == 1)


async def purge(conn: AsyncConnection, older_than: datetime) -> None:
    """Alerts resolved before `older_than`, their outbox rows, and silences ended before it."""
    await conn.execute(
        delete(OUTBOX).where(
            or_(
                OUTBOX.c.alert_id.in_(select(ALERTS.c.id).where(ALERTS.c.resolved_at < older_than)),
                and_(OUTBOX.c.alert_id.is_(None), OUTBOX.c.created_at < older_than),  # its server removed
            )
        )
    )
    await conn.execute(delete(ALERTS).where(ALERTS.c.resolved_at < older_than))
    await conn.execute(delete(SILENCES).where(SILENCES.c.until < older_than))


async def firing_servers(conn: AsyncConnection) -> dict[int, int]:
    """Per server id, how many firing alerts it has."""
    query = (
        select(ALERTS.c.server_id, func.count())
        .where(ALERTS.c.state == AlertState.FIRING.value)
        .group_by(ALERTS.c.server_id)
    )
    return {server_id: count for server_id, count in await conn.execute(query)}


async def retire(conn: AsyncConnection, dialect: str, setup: AlertSetup, servers: dict[int, str]) -> int:
    """End the open alerts of these servers (id: name), no longer collected; how many ended."""
    if not servers:
        return 0
    _, open_alerts = await _lock_and_read(conn, dialect, sorted(servers))
    now = datetime.now(UTC)
    writes = _Writes()
    ended = 0
    for server_id, current in open_alerts.items():
        if current:
            writes.add(evaluate_retired(setup.policy, current, now), servers[server_id], current)
            ended += len(current)
    await writes.execute(conn, setup.targets)
    return ended
