"""Commands answered from Redis alone, by a CLI process attached to a running worker.

`collect` and `queue stats` try this first. It answers only when a worker is alive on
this Redis and what the command needs is cached there: for `collect`, the server list
(cache.ServerList) as synced from a config with the same fingerprint as this one (same
servers, defaults and database); for `queue stats`, the run history's counts. Then no
database is opened, and neither SQLAlchemy nor SSH nor Textual is imported. Any miss --
no worker, no list, another config, a name not in the list, a result only SQL holds --
is a None, and the command takes its full path (fleettop.wiring.open_service).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

from redis.exceptions import RedisError
from saq.job import Job, Status

from fleettop.cache import Cache
from fleettop.config import Settings, servers_fingerprint
from fleettop.domain import CollectOutcome, QueueStats
from fleettop.queue import contract, control
from fleettop.queue.worker import FleetQueue
from fleettop.redis_server import running_target

# The pool of one attached command: its commands, a pipeline and one pub/sub connection.
CONNECTIONS = 4


class Attached:
    def __init__(self, cache: Cache, scheduled: FleetQueue, manual: FleetQueue):
        self.cache = cache
        self.scheduled = scheduled
        self.manual = manual

    async def stats(self) -> QueueStats | None:
        """`queue stats`, when the run history's counts are cached."""
        runs = await self.cache.run_counts()
        return None if runs is None else await control.queue_stats(self.scheduled, self.manual, self.cache, runs)

    async def servers(self, names: list[str] | None) -> list[tuple[int, str]] | None:
        """(id, name) of the named servers, or of every enabled one with names=None;
        None when the cached list cannot say (missing, stale, or a name not in it)."""
        listed = await self.cache.server_list(servers_fingerprint(self.cache.settings))
        if listed is None:
            return None
        if names is None:
            return [(server_id, name) for server_id, name, enabled in listed.servers if enabled]
        by_name = {name: server_id for server_id, name, enabled in listed.servers if enabled}
        if not all(name in by_name for name in names):
            return None  # the full path names the unknown ones, and refuses the disabled ones
        return [(by_name[name], name) for name in names]

    async def is_paused(self) -> bool:
        return await self.cache.is_paused()

    async def collect_now(self, servers: list[tuple[int, str]], *, everything: bool) -> int:
        """As FleetService.collect_now, its audit entry recorded later by a process with the database."""
        audit = control.collect_audit([name for _, name in servers], everything=everything)
        return await control.enqueue_manual(
            self.manual, self.cache, [server_id for server_id, _ in servers], audit=audit
        )

    async def wait_outcomes(
        self, server_ids: list[int], timeout: float, on_retry: Callable[[Job], None] | None = None
    ) -> list[CollectOutcome] | None:
        """Until each server's manual job finished; then how each ended, when Redis holds
        that: every job completed a fresh collection whose sample is cached. None (the
        answer is in SQL: FleetService.manual_outcomes) for a failed, duplicate or lost
        job, or a sample not cached by that very run."""
        jobs = await control.wait_manual(self.manual, self.cache, server_ids, timeout, on_retry)
        samples = await self.cache.cached_latest(server_ids)
        outcomes = []
        for server_id, job in zip(server_ids, jobs):
            sample = samples.get(server_id)
            if job is None or job.status != Status.COMPLETE or job.result != contract.OK:
                return None
            if sample is None or sample.collected_at.timestamp() * 1000 < job.started:
                return None  # the run could not cache its sample; SQL has it
            outcomes.append(CollectOutcome(status="ok", sample=sample))
        return outcomes


@contextlib.asynccontextmanager
async def attach(settings: Settings) -> AsyncIterator[Attached | None]:
    """An Attached on this config's Redis if a worker is alive there, else None."""
    target = await running_target(settings)
    if target is None:
        yield None  # no embedded Redis running: no worker either
        return
    client = target.client(CONNECTIONS)
    try:
        cache = Cache(client, settings)
        try:
            alive = await cache.workers_alive()
        except (RedisError, OSError):
            alive = 0  # the full path reports it, as it always has
        if not alive:
            yield None
            return
        scheduled, manual = (
            FleetQueue(client, cache.queue_name(lane), paused_key=cache.paused_key, ring_key=cache.ring_key)
            for lane in ("scheduled", "manual")
        )
        yield Attached(cache, scheduled, manual)
    finally:
        await client.aclose()
