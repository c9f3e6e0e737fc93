"""The repository: every SQL query fleettop runs, returning fleettop.domain models.

Each method is one short transaction of its own, except the worker's per-collection
pair (begin_collection, finish_collection), which share transactions with the other
collections of the process (store/group_commit.py). Rows become records in store/rows.py;
nothing SQLAlchemy-typed leaves the store.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import ColumnElement, and_, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from fleettop.alerting import RULES, AlertRecord, SilenceRecord
from fleettop.config import DefaultsConfig, GroupConfig, RetentionConfig, ServerConfig
from fleettop.domain import (
    AuditEntry,
    CleanResult,
    Counters,
    FleetAggregate,
    Metrics,
    Run,
    Sample,
    Server,
    actor,
    is_alerting,
    secret_binding_changes,
)
from fleettop.errors import FleettopError, UnknownServer, UsageError
from fleettop.rollup import (
    DAY_S,
    DEFAULT_POINTS,
    FIVE_MINUTES,
    RAW,
    TIERS,
    Bucket,
    Point,
    ReadPlan,
    Series,
    Tier,
    bucket_start,
    plan_read,
)
from fleettop.store import alerts, rollups
from fleettop.store.alerts import AlertSetup, Delivery, Observation
from fleettop.store.db import Database
from fleettop.store.group_commit import Begin, CollectInputs, Finish, GroupCommit, StartedRun
from fleettop.store.rows import (
    apply_config,
    run_of,
    sample_of,
    sample_values,
    server_of,
    settings_of,
    utcnow,
)
from fleettop.store.tables import SAMPLE_COLUMNS, AuditRow, RunRow, SampleRow, ServerRow

EXPORT_BATCH = 1000
AUDIT_TARGET_MAX = 255  # audit.target and audit.actor are VARCHAR(255)


class _Keep:
    def __repr__(self) -> str:
        return "KEEP"


KEEP: Final = _Keep()  # update_server(secret=KEEP): leave the stored secret as it is


class Repository:
    def __init__(
        self,
        database: Database,
        defaults: DefaultsConfig | None = None,
        retention: RetentionConfig | None = None,
        alert_setup: AlertSetup | None = None,
        groups: Mapping[str, GroupConfig] | None = None,
    ):
        """`defaults` and `groups`: the config's `defaults:` and `groups:`, which a server's unset
        interval and thresholds (NULL in the table) take each time it is read: the group of its
        first tag that sets one, else the defaults. `retention`: how long each tier of the
        history is kept (a read takes the tier that still holds its range). `alert_setup`: the
        alert rules judge each collection this repository records (a worker's); None: they do not."""
        self.database = database  # what it reads and writes
        self._sessions = database.sessions
        self.defaults = defaults or DefaultsConfig()
        self.retention = retention or RetentionConfig()
        self.alert_setup = alert_setup
        self.groups = dict(groups or {})
        self._writer: GroupCommit | None = None

    # -- servers -----------------------------------------------------------------

    async def list_servers(self, enabled_only: bool = False, tag: str | None = None) -> list[Server]:
        """The servers by name; `enabled_only`: those to collect (a group may disable its
        servers, so decided after reading); `tag`: those carrying it."""
        query = select(ServerRow).order_by(ServerRow.name)
        if enabled_only:
            query = query.where(ServerRow.enabled.is_(True))
        async with self._sessions() as session:
            servers = [server_of(row, self.defaults, self.groups) for row in await session.scalars(query)]
        return [s for s in servers if (s.enabled or not enabled_only) and (tag is None or tag in s.tags)]

    async def get_server(self, name: str) -> Server | None:
        async with self._sessions() as session:
            row = await session.scalar(select(ServerRow).where(ServerRow.name == name))
            return server_of(row, self.defaults, self.groups) if row else None

    async def get_server_by_id(self, server_id: int) -> Server | None:
        async with self._sessions() as session:
            row = await session.get(ServerRow, server_id)
            return server_of(row, self.defaults, self.groups) if row else None

    async def add_server(
        self,
        cfg: ServerConfig,
        *,
        source: str = "db",
        seal: Callable[[int], bytes] | None = None,
    ) -> Server:
        """`seal`: the server's encrypted secret, made from its new id (a secret is bound to it)."""
        now = utcnow()
        row = ServerRow(name=cfg.name, source=source, created_at=now, updated_at=now)
        apply_config(row, cfg)
        try:
            async with self._sessions.begin() as session:
                if await session.scalar(select(ServerRow.id).where(ServerRow.name == cfg.name)) is not None:
                    raise FleettopError(f"server {cfg.name!r} already exists")
                session.add(row)
                if seal is not None:
                    await session.flush()  # the id
                    row.secret = seal(row.id)
        except IntegrityError:
            raise FleettopError(f"server {cfg.name!r} already exists") from None
        return server_of(row, self.defaults, self.groups)

    async def update_server(
        self,
        name: str,
        cfg: ServerConfig,
        *,
        secret: bytes | None | _Keep = KEEP,
    ) -> Server:
        """Replace a server's settings with `cfg` (which may carry a new name)."""
        try:
            async with self._sessions.begin() as session:
                row = await session.scalar(select(ServerRow).where(ServerRow.name == name))
                if row is None:
                    raise UnknownServer(name)
                if cfg.name != name and await session.scalar(select(ServerRow.id).where(ServerRow.name == cfg.name)):
                    raise FleettopError(f"server {cfg.name!r} already exists")
                row.name = cfg.name
                apply_config(row, cfg)
                if not isinstance(secret, _Keep):
                    row.secret = secret
                row.updated_at = utcnow()
        except IntegrityError:
            raise FleettopError(f"server {cfg.name!r} already exists") from None
        return server_of(row, self.defaults, self.groups)

    async def remove_server(self, name: str) -> bool:
        """Delete a server; its samples, runs and alerts go with it (ON DELETE CASCADE). Its open
        alerts end first, in the same transaction: the RESOLVED owed for one that was notified
        stays in the outbox (alert_id SET NULL), as does anything not delivered yet."""
        async with self._sessions.begin() as session:
            server_id = await session.scalar(select(ServerRow.id).where(ServerRow.name == name))
            if server_id is None:
                return False
            if self.alert_setup is not None:
                conn = await session.connection()
                await alerts.retire(conn, self.database.dialect, self.alert_setup, {server_id: name})
            await session.execute(delete(ServerRow).where(ServerRow.id == server_id))
            return True

    async def had_servers(self) -> bool:
        """Whether this database has a server, or its audit log shows it ever had one."""
        async with self._sessions() as session:
            if await session.scalar(select(ServerRow.id).limit(1)) is not None:
                return True
            return (
                await session.scalar(select(AuditRow.id).where(AuditRow.action.like("server.%")).limit(1)) is not None
            )

    async def get_secret(self, server_id: int) -> bytes | None:
        async with self._sessions() as session:
            return await session.scalar(select(ServerRow.secret).where(ServerRow.id == server_id))

    async def sync_config_servers(self, servers: Sequence[ServerConfig]) -> list[str]:
        """Make the database agree with the config file's `servers:`; returns one line per change.

        Each listed server is created or overwritten and marked source="config" (a
        same-named server added with the CLI is adopted, history kept). A config
        server no longer listed is kept, with its history, as source="db". Nothing is
        deleted. A stored secret is kept unless the entry changes its host, port, user,
        transport or auth (SECRET_BINDING): a password goes only where it was entered for.
        """
        try:
            return await self._sync_config_servers(servers)
        except IntegrityError:
            # Another fleettop process synced the same config at the same moment.
            return await self._sync_config_servers(servers)

    async def _sync_config_servers(self, servers: Sequence[ServerConfig]) -> list[str]:
        changes: list[tuple[str, str, str]] = []
        now = utcnow()
        async with self._sessions.begin() as session:
            rows = {row.name: row for row in await session.scalars(select(ServerRow))}
            for cfg in servers:
                row = rows.get(cfg.name)
                if row is None:
                    row = ServerRow(name=cfg.name, source="config", created_at=now, updated_at=now)
                    apply_config(row, cfg)
                    session.add(row)
                    changes.append(("server.add", cfg.name, "added from the config file"))
                    continue
                before = settings_of(row)
                rebound = secret_binding_changes(row, cfg) if row.secret is not None else []
                apply_config(row, cfg)
                if rebound:
                    row.secret = None
                if row.source != "config":
                    row.source = "config"
                    changes.append(("server.adopt", cfg.name, "now defined by the config file (history kept)"))
                elif settings_of(row) != before:
                    changes.append(("server.edit", cfg.name, "updated from the config file"))
                else:
                    continue
                if rebound:
                    changes.append(
                        (
                            "server.edit",
                            cfg.name,
                            f"stored password dropped ({', '.join(rebound)} changed): set it again with "
                            f"fleettop servers edit {cfg.name} --password",
                        )
                    )
                row.updated_at = now
            listed = {cfg.name for cfg in servers}
            for row in rows.values():
                if row.source == "config" and row.name not in listed:
                    row.source = "db"
                    row.updated_at = now
                    changes.append(
                        (
                            "server.release",
                            row.name,
                            "no longer in the config file: kept, now managed with `fleettop servers`",
                        )
                    )
            who = actor()
            for action, target, detail in changes:
                session.add(AuditRow(at=now, actor=who, action=action, target=target, detail=detail))
        return [f"server {target!r}: {detail}" for _, target, detail in changes]

    # -- samples -----------------------------------------------------------------

    def raw_cutoff(self, now: float | None = None) -> int:
        """Epoch seconds before which raw samples are expired (and their buckets left as they are)."""
        return int(time.time() if now is None else now) - self.retention.raw_days * DAY_S

    async def begin_collection(
        self, server_id: int, job_key: str, *, trigger: str, attempt: int, skip_disabled: bool
    ) -> CollectInputs | None:
        """What a collection needs before it starts, and its run started ('running'): the
        server, its stored secret, the counters of its newest sample, whether a run with
        this job key already finished ok. A run with this key still 'running' (an attempt
        whose worker died) is marked retried, lost. No run is started when the key is done,
        or the server is disabled and `skip_disabled`. None when the server is gone.

        Group-committed with the other collections of this process (see GroupCommit);
        returns once the run is committed."""
        return await self._group_commit().submit(Begin(server_id, job_key, trigger, attempt, skip_disabled))

    async def finish_collection(
        self,
        run: StartedRun,
        server_id: int,
        metrics: Metrics,
        counters: Counters | None,
        server: Server | None = None,
        open_alerts: bool = True,
    ) -> bool:
        """A successful collection's writes, as one: the sample (kept once per collected_at), its
        run finished ok, and (given the server, in a worker) the alerts it changes with the
        notifications they owe (`open_alerts`: as begin_collection found it; a
        sample of a server without any that breaches nothing is not judged, at no cost).
        Group-committed; returns once committed, whether the server has a pending alert now
        (to collect it again sooner)."""
        observation = None
        if server is not None and self.alert_setup is not None:
            observation = Observation(
                server_id, server.name, metrics.collected_at, server.thresholds, metrics, open_alerts
            )
        finish = Finish(run, sample_values(server_id, metrics, counters), utcnow(), observation)
        return bool(await self._group_commit().submit(finish))

    def _group_commit(self) -> GroupCommit:
        loop = asyncio.get_running_loop()
        if self._writer is None or self._writer.loop is not loop:
            self._writer = GroupCommit(
                self.database, self.defaults, loop, self.raw_cutoff, self.alert_setup, self.groups
            )
        return self._writer

    async def latest_samples(self) -> dict[int, Sample]:
        """The newest sample of every server that has one, by server id."""
        # One index probe per server on (server_id, collected_at), instead of a GROUP BY over
        # every sample ever stored: stays fast however long the history grows.
        newest_id = (
            select(SAMPLE_COLUMNS.id)
            .where(SAMPLE_COLUMNS.server_id == ServerRow.id)
            .order_by(SAMPLE_COLUMNS.collected_at.desc())
            .limit(1)
            .correlate(ServerRow)
            .scalar_subquery()
        )
        query = select(SampleRow.__table__).select_from(ServerRow).join(SampleRow, SAMPLE_COLUMNS.id == newest_id)
        async with self._sessions() as session:
            rows = (await session.execute(query)).mappings().all()
        return {row["server_id"]: sample_of(row) for row in rows}

    async def count_samples(self, server_id: int) -> int:
        async with self._sessions() as session:
            query = select(func.count()).select_from(SampleRow).where(SampleRow.server_id == server_id)
            return await session.scalar(query) or 0

    async def aggregate(self) -> FleetAggregate:
        """Totals over enabled servers: up/down by their last finished run, alerting by their latest sample."""
        servers = {server.id: server for server in await self.list_servers(enabled_only=True)}
        latest = {sid: sample for sid, sample in (await self.latest_samples()).items() if sid in servers}
        ranked = (
            select(
                RunRow.server_id,
                RunRow.status,
                func.row_number()
                .over(partition_by=RunRow.server_id, order_by=(RunRow.finished_at.desc(), RunRow.id.desc()))
                .label("rank"),
            )
            .where(RunRow.finished_at.is_not(None))
            .subquery()
        )
        async with self._sessions() as session:
            rows = await session.execute(select(ranked.c.server_id, ranked.c.status).where(ranked.c.rank == 1))
            last_status = {server_id: status for server_id, status in rows if server_id in servers}

        def average(values: list[float | None]) -> float | None:
            present = [v for v in values if v is not None]
            return sum(present) / len(present) if present else None

        samples = list(latest.values())
        return FleetAggregate(
            total=len(servers),
            up=sum(1 for status in last_status.values() if status == "ok"),
            down=sum(1 for status in last_status.values() if status in ("failed", "retried")),
            alerting=sum(1 for sid, sample in latest.items() if is_alerting(sample, servers[sid].thresholds)),
            avg_cpu=average([s.cpu_percent for s in samples]),
            avg_ram=average([s.mem_percent for s in samples]),
            avg_disk=average([s.disk_percent for s in samples]),
        )

    async def purge_samples(self, older_than: datetime) -> int:
        purged = await self._purge(RAW, int(older_than.timestamp()))
        async with self.database.engine.begin() as conn:  # alerts resolved, silences ended before it
            await alerts.purge(conn, older_than)
        return purged

    async def purge_expired(self, now: float | None = None) -> dict[str, int]:
        """Delete what each tier's retention no longer keeps, in batches of a few thousand rows
        (each its own transaction: the workers' writes go on between them). Rows by tier name."""
        now = time.time() if now is None else now
        keep = self.retention.keep_days()
        return {tier.name: await self._purge(tier, int(now) - keep[tier.name] * DAY_S) for tier in TIERS}

    async def _purge(self, tier: Tier, cutoff: int) -> int:
        purged = 0
        while True:
            async with self.database.engine.begin() as conn:
                deleted = await rollups.purge_batch(conn, tier, cutoff)
            purged += deleted
            if not deleted:
                return purged

    # -- long-term history -----------------------------------------------------------

    async def history_series(
        self,
        server_id: int,
        metric: str,
        since: datetime,
        until: datetime,
        *,
        step: int | None = None,
        max_points: int = DEFAULT_POINTS,
    ) -> Series:
        """One metric of one server over [since, until), from the tier that range needs: at
        most `max_points` points, or one every `step` seconds (fleettop.rollup.plan_read)."""
        # The range in whole seconds, rounded outwards: a sample of this very second is in it.
        plan = plan_read(
            math.floor(since.timestamp()), math.ceil(until.timestamp()), now=int(time.time()),
            keep_days=self.retention.keep_days(), max_points=max_points, step=step,
        )  # fmt: skip
        points = await self.history_points(server_id, metric, plan)
        return Series(metric, plan.tier.name, plan.step, plan.since, plan.until, points)

    async def history_points(self, server_id: int, metric: str, plan: ReadPlan) -> tuple[Point, ...]:
        """One metric of one server as `plan` reads it (fleettop.rollup.plan_read)."""
        async with self.database.engine.connect() as conn:
            return await rollups.read_points(conn, server_id, metric, plan)

    async def disk_hours(
        self, server_ids: Sequence[int] | None, since: int
    ) -> dict[int, dict[str, list[tuple[int, float]]]]:
        """Each mount's hourly average disk % from `since` (epoch) on, by server id (None: every
        server) and mount."""
        async with self.database.engine.connect() as conn:
            return await rollups.disk_hours(conn, server_ids, since)

    async def history_mounts(self, server_id: int) -> list[str]:
        async with self.database.engine.connect() as conn:
            return await rollups.mounts_of(conn, server_id)

    async def write_rollups(self, tier: Tier, buckets: dict[int, list[Bucket]]) -> None:
        """Whole buckets of a tier by server id, as the workers write them (the demo's year)."""
        async with self.database.engine.begin() as conn:
            await rollups.write_buckets(conn, tier, buckets)

    async def rebuild_rollups(self, now: float | None = None) -> int:
        """Recompute every bucket of the raw samples still kept, a day of one server per
        transaction (the rollups of samples stored before they existed: an upgraded
        database). Idempotent, as every rollup write; returns the days recomputed."""
        cutoff = self.raw_cutoff(now)
        async with self._sessions() as session:
            spans = (
                await session.execute(
                    select(
                        SAMPLE_COLUMNS.server_id,
                        func.min(SAMPLE_COLUMNS.collected_at),
                        func.max(SAMPLE_COLUMNS.collected_at),
                    )
                    .where(SAMPLE_COLUMNS.collected_at >= datetime.fromtimestamp(cutoff, UTC))
                    .group_by(SAMPLE_COLUMNS.server_id)
                )
            ).all()
        days = 0
        for server_id, first, last in spans:
            day = bucket_start(int(first.timestamp()), DAY_S)
            while day <= last.timestamp():
                starts = range(day, day + DAY_S, FIVE_MINUTES.seconds)
                async with self.database.engine.begin() as conn:
                    touched = [(server_id, datetime.fromtimestamp(start, UTC)) for start in starts]
                    await rollups.roll_up_samples(conn, touched, oldest=cutoff)
                days += 1
                day += DAY_S
        return days

    async def iter_samples(
        self,
        server: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        tag: str | None = None,
    ) -> AsyncIterator[Sample]:
        """Every sample in the range (since inclusive, until exclusive), oldest first, streamed
        from a server-side cursor in batches: memory stays flat however long the history.
        `server`: that server's only; `tag`: those of the servers carrying it."""
        query = select(SampleRow.__table__)
        if server is not None:
            found = await self.get_server(server)
            if found is None:
                raise UnknownServer(server)
            query = query.where(SAMPLE_COLUMNS.server_id == found.id)
        if tag is not None:
            tagged = [found.id for found in await self.list_servers(tag=tag)]
            query = query.where(SAMPLE_COLUMNS.server_id.in_(tagged))
        if since is not None:
            query = query.where(SAMPLE_COLUMNS.collected_at >= since)
        if until is not None:
            query = query.where(SAMPLE_COLUMNS.collected_at < until)
        query = query.order_by(SAMPLE_COLUMNS.collected_at, SAMPLE_COLUMNS.server_id)
        async with self._sessions() as session:
            result = await session.stream(query.execution_options(yield_per=EXPORT_BATCH))
            async for row in result.mappings():
                yield sample_of(row)

    # -- runs --------------------------------------------------------------------

    async def finish_run(
        self, run_id: int, status: str, error: str | None = None, server: Server | None = None
    ) -> bool:
        """A run's end. A collection failed for good of `server` (given in a worker) counts
        toward its `down` alert, in the same transaction: whether that is pending now (to
        collect the server again sooner)."""
        if status not in {"ok", "failed", "retried"}:
            raise ValueError(f"a run finishes as 'ok', 'failed' or 'retried', not {status!r}")
        finished = utcnow()
        async with self._sessions.begin() as session:
            row = await session.get(RunRow, run_id)
            if row is None:
                return False  # its server was removed meanwhile, and the run with it
            row.status = status
            row.error = error
            row.finished_at = finished
            row.duration_s = (finished - row.started_at).total_seconds()
            if status == "failed" and server is not None and self.alert_setup is not None:
                await session.flush()
                observation = Observation(server.id, server.name, finished, server.thresholds)
                conn = await session.connection()
                return bool(await alerts.judge(conn, self.database.dialect, self.alert_setup, [observation]))
        return False

    async def close_stale_runs(self, started_before: datetime, error: str) -> int:
        """Mark failed every run still 'running' that started before `started_before`: no
        attempt outlives its job timeout, so such a run's worker or its final write was lost
        (killed, or the database away when it finished). Returns how many were closed."""
        finished = utcnow()
        async with self._sessions.begin() as session:
            rows = (
                await session.scalars(
                    select(RunRow).where(RunRow.status == "running", RunRow.started_at < started_before).limit(1000)
                )
            ).all()
            for row in rows:
                row.status = "failed"
                row.error = error
                row.finished_at = finished
                row.duration_s = (finished - row.started_at).total_seconds()
        return len(rows)

    async def recent_runs(self, server_id: int, limit: int = 20) -> list[Run]:
        return await self._runs(
            RunRow.server_id == server_id, order=(RunRow.started_at.desc(), RunRow.id.desc()), limit=limit
        )

    async def failed_runs(self, limit: int = 50) -> list[Run]:
        return await self._runs(
            RunRow.status == "failed", order=(RunRow.finished_at.desc(), RunRow.id.desc()), limit=limit
        )

    async def last_runs(self, server_ids: Sequence[int]) -> dict[int, Run]:
        """The newest run of each of these servers that has run, in one query."""
        if not server_ids:
            return {}
        newest = aliased(RunRow)
        newest_id = (
            select(newest.id)
            .where(newest.server_id == ServerRow.id)
            .order_by(newest.started_at.desc(), newest.id.desc())
            .limit(1)
            .correlate(ServerRow)
            .scalar_subquery()
        )
        query = (
            select(RunRow, ServerRow.name)
            .select_from(ServerRow)
            .join(RunRow, RunRow.id == newest_id)
            .where(ServerRow.id.in_(list(server_ids)))
        )
        async with self._sessions() as session:
            return {row.server_id: run_of(row, name) for row, name in await session.execute(query)}

    async def get_run(self, run_id: int) -> Run | None:
        runs = await self._runs(RunRow.id == run_id, order=(RunRow.id,), limit=1)
        return runs[0] if runs else None

    async def _runs(self, condition: ColumnElement[bool], *, order: tuple[Any, ...], limit: int) -> list[Run]:
        query = (
            select(RunRow, ServerRow.name)
            .join(ServerRow, ServerRow.id == RunRow.server_id)
            .where(condition)
            .order_by(*order)
            .limit(limit)
        )
        async with self._sessions() as session:
            return [run_of(row, name) for row, name in await session.execute(query)]

    async def run_counts(self) -> dict[str, int]:
        query = select(RunRow.status, func.count()).where(RunRow.status.in_(("ok", "failed"))).group_by(RunRow.status)
        async with self._sessions() as session:
            counts = dict((await session.execute(query)).all())
        return {"completed": counts.get("ok", 0), "failed": counts.get("failed", 0)}

    async def clean_runs(
        self, completed_max_age: float, completed_keep: int, failed_max_age: float, failed_keep: int
    ) -> CleanResult:
        """Delete finished runs older than max_age seconds or past the newest `keep` of their
        status. Each server's newest finished run is always kept: up/down depends on it.
        Returns how many went, ok (completed) and failed or retried (failed)."""
        now = utcnow()
        ranked = (
            select(
                RunRow.id,
                RunRow.status,
                RunRow.finished_at,
                func.row_number()
                .over(partition_by=RunRow.status, order_by=(RunRow.finished_at.desc(), RunRow.id.desc()))
                .label("rank_in_status"),
                func.row_number()
                .over(partition_by=RunRow.server_id, order_by=(RunRow.finished_at.desc(), RunRow.id.desc()))
                .label("rank_in_server"),
            )
            .where(RunRow.finished_at.is_not(None))
            .subquery()
        )

        def doomed(status: str, max_age: float, keep: int) -> ColumnElement[bool]:
            cutoff = datetime.fromtimestamp(now.timestamp() - max_age, UTC)
            return and_(
                ranked.c.status == status,
                (ranked.c.finished_at < cutoff) | (ranked.c.rank_in_status > keep),
            )

        victims = select(ranked.c.id).where(
            ranked.c.rank_in_server > 1,
            doomed("ok", completed_max_age, completed_keep)
            | doomed("failed", failed_max_age, failed_keep)
            | doomed("retried", failed_max_age, failed_keep),
        )
        async with self._sessions.begin() as session:
            statuses = await session.scalars(
                delete(RunRow)
                .where(RunRow.id.in_(victims))
                .returning(RunRow.status)
                .execution_options(synchronize_session=False)
            )
            gone = list(statuses)
        return CleanResult(completed=gone.count("ok"), failed=len(gone) - gone.count("ok"))

    # -- alerts ------------------------------------------------------------------

    async def alerts(self, *, resolved_since: datetime | None = None) -> list[AlertRecord]:
        async with self.database.engine.connect() as conn:
            return await alerts.list_alerts(conn, utcnow(), resolved_since)

    async def server_alerts(self, server_id: int, limit: int = 20) -> list[AlertRecord]:
        async with self.database.engine.connect() as conn:
            return await alerts.server_alerts(conn, server_id, utcnow(), limit)

    async def firing_counts(self) -> dict[int, int]:
        async with self.database.engine.connect() as conn:
            return await alerts.firing_servers(conn)

    async def ack_alert(self, alert_id: int, who: str) -> AlertRecord:
        """Acknowledge an open alert (its reminders stop); audited."""
        async with self.database.engine.begin() as conn:
            record = await alerts.ack(conn, alert_id, who, utcnow())
        if record is None:
            raise UsageError(f"no open alert has id {alert_id} (see `fleettop alerts`)")
        await self.audit(
            "alert.ack", record.server, f"alert {alert_id}: {record.rule} {record.label}".rstrip(), who=who
        )
        return record

    async def add_silence(self, name: str, rule: str | None, until: datetime, comment: str, who: str) -> SilenceRecord:
        """Hold back the notifications of a server (one rule, or all) until `until`; audited."""
        if rule is not None and rule not in RULES:
            raise UsageError(f"--rule {rule!r}: expected one of {', '.join(RULES)}")
        server = await self.get_server(name)
        if server is None:
            raise UnknownServer(name)
        now = utcnow()
        async with self.database.engine.begin() as conn:
            silence_id = await alerts.add_silence(conn, server.id, rule, until, comment, who, now)
            record = (await alerts.list_silences(conn, now, silence_id))[0]
        detail = f"silence {record.id}: {rule or 'every rule'} until {until.isoformat(timespec='seconds')}"
        await self.audit("silence.add", record.server, detail + (f"; {comment}" if comment else ""), who=who)
        return record

    async def silences(self) -> list[SilenceRecord]:
        async with self.database.engine.connect() as conn:
            return await alerts.list_silences(conn, utcnow())

    async def expire_silence(self, silence_id: int, who: str) -> SilenceRecord:
        now = utcnow()
        async with self.database.engine.begin() as conn:
            if not await alerts.expire_silence(conn, silence_id, now):
                raise UsageError(f"no silence in force has id {silence_id} (see `fleettop silence --list`)")
            record = (await alerts.list_silences(conn, now, silence_id))[0]
        await self.audit("silence.expire", record.server, f"silence {silence_id}", who=who)
        return record

    async def retire_alerts(self, servers: dict[int, str]) -> int:
        """End the open alerts of these servers (id: name), no longer collected (disabled):
        a RESOLVED for each that was notified. How many ended; 0 where this repository judges
        no alerts (a command's, not a worker's)."""
        if self.alert_setup is None or not servers:
            return 0
        async with self.database.engine.begin() as conn:
            return await alerts.retire(conn, self.database.dialect, self.alert_setup, servers)

    async def claim_notifications(
        self, group_wait: timedelta, lease: timedelta, targets: Sequence[str]
    ) -> list[Delivery]:
        async with self.database.engine.begin() as conn:
            return await alerts.claim(conn, utcnow(), group_wait, lease, targets)

    async def delivered(self, ids: Sequence[int]) -> None:
        async with self.database.engine.begin() as conn:
            await alerts.delivered(conn, ids, utcnow())

    async def not_delivered(self, ids: Sequence[int], error: str, retry_at: datetime | None) -> None:
        async with self.database.engine.begin() as conn:
            await alerts.not_delivered(conn, ids, error, utcnow(), retry_at)

    # -- audit -------------------------------------------------------------------

    async def audit(
        self, action: str, target: str, detail: str = "", *, who: str | None = None, at: datetime | None = None
    ) -> None:
        """Record who did what (by default this process's user, now). Never refused for
        length: a target longer than its column (many servers collected by name) is cut
        there, and kept whole in the detail."""
        if len(target) > AUDIT_TARGET_MAX:
            detail = f"{target}; {detail}" if detail else target
            target = target[: AUDIT_TARGET_MAX - 1] + "…"
        async with self._sessions.begin() as session:
            session.add(
                AuditRow(
                    at=at or utcnow(),
                    actor=(who or actor())[:AUDIT_TARGET_MAX],
                    action=action[:64],
                    target=target,
                    detail=detail,
                )
            )

    async def audit_recorded(self, who: str, action: str, at: datetime) -> bool:
        """Whether an entry by `who` of `action` at this very time (to the microsecond) is
        recorded already: a relayed entry seen twice is a replay."""
        query = select(AuditRow.id).where(
            AuditRow.actor == who[:AUDIT_TARGET_MAX], AuditRow.action == action, AuditRow.at == at
        )
        async with self._sessions() as session:
            return (await session.scalars(query.limit(1))).first() is not None

    async def audit_entries(self, limit: int = 100) -> list[AuditEntry]:
        query = select(AuditRow).order_by(AuditRow.at.desc(), AuditRow.id.desc()).limit(limit)
        async with self._sessions() as session:
            return [
                AuditEntry(id=r.id, at=r.at, actor=r.actor, action=r.action, target=r.target, detail=r.detail)
                for r in await session.scalars(query)
            ]
