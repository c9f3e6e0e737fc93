"""Each enabled server on its own interval, with several workers on one Redis.

A server's schedule is a chain of jobs under one stable key on the scheduled
queue: when a link finishes for good, `rechain` enqueues the next one at the next
point of its grid. SAQ refuses a key that is already waiting or running, so two
processes can never hold two links of one server: no server is collected twice
per interval. What breaks a chain (a worker killed between finishing a link and
enqueuing the next, a link swept after its last attempt, Redis restarted empty)
is repaired by `reconcile`, which every worker process runs every
RECONCILE_EVERY_S seconds and at once on a "servers" event. It is idempotent, so
it needs no lock: it adds the missing links (due one interval after the newest
sample, or now), brings forward links left far out by a shortened interval, and
withdraws the links of disabled or removed servers. It also drops the server list
cached for commands beside a worker (fleettop.cli.attached) when it no longer matches the
database: a change made while Redis was away could not drop it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from fleettop.cache import ServerList
from fleettop.domain import Event, Server
from fleettop.errors import FleettopError
from fleettop.queue import control
from fleettop.queue.contract import CollectContext, job_timeout
from fleettop.queue.control import enqueue_link
from fleettop.tasks import cancel_and_wait
from fleettop.text import typed_line
from fleettop.timing import scaled

log = logging.getLogger("fleettop.scheduler")

RECONCILE_EVERY_S = scaled(10.0)
CLEAN_EVERY_S = 3600
PURGE_EVERY_S = 3600
RETRY_AFTER_FAILURE_S = 1.0
STALE_RUN_MARGIN_S = 60  # past the job timeout; room for clocks of several machines


@dataclass
class ReconcileResult:
    added: int = 0
    moved: int = 0
    withdrawn: int = 0
    alerts_ended: int = 0
    stale_list_dropped: bool = False
    enabled: frozenset[int] = frozenset()

    @property
    def changed(self) -> bool:
        return bool(self.added or self.moved or self.withdrawn)


async def reconcile(deps: CollectContext) -> ReconcileResult:
    result = ReconcileResult()
    servers = await deps.repo.list_servers()
    enabled = {server.id: server for server in servers if server.enabled}
    result.enabled = frozenset(enabled)
    links: dict[int, float] = {}
    for key, due in (await deps.lanes.scheduled.waiting_links()).items():
        server_id = deps.cache.server_of_job_key("scheduled", key)
        if server_id is not None:
            links[server_id] = due
    now = time.time()
    last_sampled: dict[int, float] | None = None

    async def due(server: Server) -> float:
        """One interval after the server's newest sample, or now (one query for all servers)."""
        nonlocal last_sampled
        if last_sampled is None:
            last_sampled = {
                sid: sample.collected_at.timestamp() for sid, sample in (await deps.repo.latest_samples()).items()
            }
        previous = last_sampled.get(server.id)
        return now if previous is None else max(now, previous + scaled(server.interval))

    for server_id, server in enabled.items():
        if server_id not in links:
            result.added += await enqueue_link(deps, server_id, await due(server))
        elif links[server_id] > now + scaled(server.interval) + 1:
            key = deps.cache.job_key("scheduled", server_id)
            result.moved += await deps.lanes.scheduled.reschedule(key, await due(server))
    for server_id in links.keys() - enabled.keys():
        result.withdrawn += await deps.lanes.scheduled.withdraw(deps.cache.job_key("scheduled", server_id))
    # Nothing judges a disabled server's alerts any more (by its own setting or its group's): they end.
    disabled = {server.id: server.name for server in servers if not server.enabled}
    result.alerts_ended = await deps.repo.retire_alerts(disabled)
    if result.alerts_ended:
        for server_id in disabled:  # the dashboards repaint these rows (their `!` goes)
            await deps.cache.publish(Event(kind="run", server_id=server_id))
    result.stale_list_dropped = await deps.cache.drop_stale_server_list(ServerList.of(deps.settings, servers))
    return result


class Scheduler:
    """Runs `reconcile` periodically and whenever servers change, and the hourly
    clean and history purge, until cancelled."""

    def __init__(self, deps: CollectContext):
        self.deps = deps
        self._wake = asyncio.Event()
        self._failing = False
        self._purging: asyncio.Task[None] | None = None
        self.enabled: frozenset[int] | None = None  # the enabled servers' ids, at the last reconcile

    def wake(self) -> None:
        """Reconcile now: the server list changed (a "servers" event), or a change may have
        been announced while nobody was subscribed (fleettop.queue.runtime follows the events)."""
        self._wake.set()

    async def run(self) -> None:
        try:
            while True:
                self._wake.clear()
                if await self._reconcile_once():
                    await self._clean_now_and_then()
                    await self._purge_now_and_then()
                    pause = RECONCILE_EVERY_S
                else:
                    pause = RETRY_AFTER_FAILURE_S  # rebuild soon after Redis or the database is back
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), pause)
        finally:
            if self._purging is not None:
                await cancel_and_wait([self._purging])

    async def _purge_now_and_then(self) -> None:
        """The history's retention (retention: raw_days, rollup_5m_days, rollup_1h_days),
        applied hourly by one process, in a task of its own: the first purge after an upgrade
        may take a while, and the schedule must not wait for it."""
        if self._purging is not None and not self._purging.done():
            return
        try:
            claimed = await self.deps.cache.claim("purge", PURGE_EVERY_S)
        except (RedisError, OSError) as exc:
            log.warning("history purge not started: %s", typed_line(exc))
            return
        if claimed:
            self._purging = asyncio.create_task(self._purge(), name="fleettop-purge")

    async def _purge(self) -> None:
        try:
            purged = await self.deps.repo.purge_expired()
        except (OSError, SQLAlchemyError, FleettopError) as exc:
            log.warning("history purge failed: %s", typed_line(exc))
            return
        if any(purged.values()):
            log.info(
                "history purge: %d samples, %d 5-minute and %d 1-hour rows expired",
                purged["raw"],
                purged["5m"],
                purged["1h"],
            )

    async def _clean_now_and_then(self) -> None:
        """The queue's retention limits, applied hourly by one process: keeps the run
        history (and so the stats' counts) small without anyone running `queue clean`."""
        try:
            if await self.deps.cache.claim("clean", CLEAN_EVERY_S):
                removed = await control.clean(self.deps)
                log.info("clean: %d finished runs and job records removed", removed.total)
        except (RedisError, OSError, SQLAlchemyError, FleettopError) as exc:
            log.warning("clean failed: %s", typed_line(exc))

    async def _reconcile_once(self) -> bool:
        try:
            result = await reconcile(self.deps)
        except (RedisError, OSError, SQLAlchemyError, FleettopError) as exc:
            if not self._failing:
                log.error("schedule reconcile failed: %s; retrying", typed_line(exc))
                self._failing = True
            return False
        self.enabled = result.enabled
        if self._failing:
            log.warning("schedule reconcile works again")
            self._failing = False
        if result.changed:
            log.info("schedule: %d added, %d moved, %d withdrawn", result.added, result.moved, result.withdrawn)
        if result.alerts_ended:
            log.info("alerts: %d of disabled servers ended", result.alerts_ended)
        if result.stale_list_dropped:
            log.warning("the server list in Redis was out of date (servers changed while Redis was away): dropped")
        await self._close_stale_runs()
        return True

    async def _close_stale_runs(self) -> None:
        """Runs still 'running' long past any job's timeout lost their worker or their final
        write (a worker killed while Redis was restarted empty, a process gone while the
        database was away): mark them failed, so nothing shows as running forever."""
        cutoff = datetime.now(timezone.utc) - timedelta(seconds=job_timeout(self.deps.settings) + STALE_RUN_MARGIN_S)
        try:
            closed = await self.deps.repo.close_stale_runs(
                cutoff, "lost: its worker stopped, or its result could not be written"
            )
        except (SQLAlchemyError, OSError, FleettopError) as exc:
            log.warning("closing stale runs failed: %s", typed_line(exc))
            return
        if closed:
            log.warning("%d runs left running past their timeout marked failed (lost)", closed)
            with contextlib.suppress(RedisError, OSError):
                await self.deps.cache.drop_run_counts()  # failed runs the cached counts did not see
